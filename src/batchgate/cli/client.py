"""A small synchronous client of the API for the client commands, and the one mapping from failures to exit codes.

    unreachable server, bad URL scheme aside   3  EXIT_UNREACHABLE
    an answer of 5xx                           3  EXIT_UNREACHABLE
    an answer of 4xx (401, 404, 400, 409, …)   1  EXIT_REFUSED, with the API's own message
    bad usage: no key, a bad --server-url      2  EXIT_USAGE

Uploads and downloads stream: neither holds a file in memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import orjson

from batchgate import __version__
from batchgate.errors import CommandFailed

EXIT_OK = 0
EXIT_REFUSED = 1  # the API refused (4xx); for run/watch, a batch completed with failed lines
EXIT_USAGE = 2  # bad usage, an invalid file, or a batch that ended failed, expired or cancelled
EXIT_UNREACHABLE = 3  # no answer from the server, or a 5xx

DEFAULT_URL = "http://127.0.0.1:8080"
PREFIX = "/api/v1/llm"  # the MKA1 paths; /v1 is the same API
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
CHUNK = 1 << 16

# (flag, attribute, metavar, environment variable, help)
CONNECTION_FLAGS = (
    ("--server-url", "server_url", "URL", "BATCHGATE_URL", f"the batchgate server (default {DEFAULT_URL})"),
    ("--api-key", "api_key", "KEY", "BATCHGATE_API_KEY", "the API key (see 'batchgate keys create')"),
    ("--on-behalf-of", "on_behalf_of", "VALUE", "BATCHGATE_ON_BEHALF_OF", "the X-On-Behalf-Of value to act for"),
)


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    for flag, name, metavar, env, text in CONNECTION_FLAGS:
        group.add_argument(flag, dest=name, metavar=metavar, default=None, help=f"{text} [env {env}]")


@dataclass(frozen=True)
class Connection:
    url: str
    api_key: str
    on_behalf_of: str | None = None

    @classmethod
    def of(cls, args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Connection:
        """Each value from its flag, else its environment variable; the URL has a default, the key does not."""
        values = {name: getattr(args, name, None) or env.get(var) or None for _, name, _, var, _ in CONNECTION_FLAGS}
        if not values["api_key"]:
            raise CommandFailed("no API key: pass --api-key or set BATCHGATE_API_KEY", EXIT_USAGE)
        url = (values["server_url"] or DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CommandFailed(f"the server URL must start with http:// or https://, not {url!r}", EXIT_USAGE)
        return cls(url, values["api_key"], values["on_behalf_of"])

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": f"batchgate-cli/{__version__}"}
        if self.on_behalf_of:
            headers["X-On-Behalf-Of"] = self.on_behalf_of
        return headers


def failure_of(status: int, body: bytes, reason: str) -> CommandFailed:
    """The one-line failure for an answer that is not 2xx, with the API's own message when it sent one."""
    message = _api_message(body) or reason or "no message"
    if status >= 500:
        return CommandFailed(f"the server failed (HTTP {status}): {message}", EXIT_UNREACHABLE)
    if status == 401:
        return CommandFailed(f"the server refused the API key (HTTP 401): {message}", EXIT_REFUSED)
    return CommandFailed(f"{message} (HTTP {status})", EXIT_REFUSED)


def _api_message(body: bytes) -> str | None:
    try:
        error = orjson.loads(body)["error"]
        return str(error["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class ApiClient:
    """The API's files and batches calls; every failure surfaces as a CommandFailed."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self._http = httpx.Client(base_url=connection.url + PREFIX, headers=connection.headers, timeout=TIMEOUT)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """One JSON call; its decoded answer."""
        with self._answer(method, path, params=_present(params), json=json) as response:
            return orjson.loads(response.read())

    def upload(self, path: Path, purpose: str) -> Any:
        """POST the file as multipart, read from disk a chunk at a time."""
        with path.open("rb") as file:
            files = {"file": (path.name, file, "application/jsonl")}
            with self._answer("POST", "/files", data={"purpose": purpose}, files=files) as response:
                return orjson.loads(response.read())

    def download(self, file_id: str, into: BinaryIO) -> int:
        """Stream a file's content into `into`; the bytes written."""
        written = 0
        with self._answer("GET", f"/files/{file_id}/content") as response:
            for chunk in response.iter_bytes(CHUNK):
                into.write(chunk)
                written += len(chunk)
        return written

    def download_to(self, file_id: str, target: Path) -> int:
        """Download into `target` whole or not at all: a temporary file beside it is renamed at the end."""
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as into:
                written = self.download(file_id, into)
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
        return written

    @contextmanager
    def _answer(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    raise failure_of(response.status_code, response.read(), response.reason_phrase)
                yield response
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise CommandFailed(
                f"cannot reach the server at {self.connection.url}: {reason}", EXIT_UNREACHABLE
            ) from None


def _present(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if params is None else {k: v for k, v in params.items() if v is not None}
