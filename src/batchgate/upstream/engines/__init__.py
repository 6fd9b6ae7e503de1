"""Built-in models that run inside the gateway: model name → engine, and the default per endpoint.

An engine's methods block (they run on a thread pool, never on the event loop) and the native
code underneath releases the GIL. Bad input raises InvalidRequest; a missing package raises
EngineMissing, whose message says what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from batchgate.settings import Settings
from batchgate.upstream.engines.e5 import E5Engine
from batchgate.upstream.engines.smollm import SmolLMEngine

# Emit one streamed chunk; answers False once nobody listens any more (generation then stops).
Emit = Callable[[dict], bool]


class Engine(Protocol):
    endpoints: frozenset[str]
    parallel: int  # calls it serves at once: the size of its thread pool

    def answer(self, endpoint: str, body: dict) -> dict: ...

    def stream(self, endpoint: str, body: dict, emit: Emit) -> None: ...


ENGINES: dict[str, Callable[[str, Settings], Engine]] = {
    "multilingual-e5-small": E5Engine,
    "smollm2-135m-instruct": SmolLMEngine,
}

# What `"model": "auto"` means on each endpoint; images have no local model.
DEFAULTS = {
    "/v1/chat/completions": "smollm2-135m-instruct",
    "/v1/responses": "smollm2-135m-instruct",
    "/v1/embeddings": "multilingual-e5-small",
}
AUTO = "auto"


def resolve_model(endpoint: str, body: dict) -> dict:
    """The body with `"model": "auto"` replaced by the endpoint's local default (unchanged otherwise)."""
    if body.get("model") == AUTO and endpoint in DEFAULTS:
        return {**body, "model": DEFAULTS[endpoint]}
    return body
