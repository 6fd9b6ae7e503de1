"""How the server processes log: `text` for people, `json` (one object per line) for log collectors.

Line-level events carry the batch, the shard and the upstream they concern: the batch and shard
from `log_context` (set around a shard's run, and inherited by the tasks it starts), the upstream
from the call's `extra=`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import orjson

from batchgate.settings import Settings

CONTEXT_FIELDS = ("batch_id", "shard", "upstream")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTEXT: ContextVar[Mapping[str, object] | None] = ContextVar("batchgate_log_context", default=None)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every record logged inside (and in tasks started inside) carries these fields."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message"} plus batch_id / shard / upstream when known, and "exc" for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _CONTEXT.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _iso_time(created: float) -> str:
    whole = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((created - whole) * 1000):03d}Z"


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {
    "text": lambda: logging.Formatter(TEXT_FORMAT),
    "json": JsonFormatter,
}


def configure(settings: Settings) -> None:
    """Log to stderr at `log_level`, in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[settings.log_format]())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
