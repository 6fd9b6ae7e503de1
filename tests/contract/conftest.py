"""Fixtures and helpers for contract tests: module-scoped servers, raw HTTP, JSONL builders, polling.

The root conftest's `gateway`/`mock_upstream` fixtures are function-scoped (a fresh process pair
per test). Tests that do not disturb each other share one pair per module through the fixtures
below; they keep apart by using a unique X-On-Behalf-Of value (`unique_obo`), which the contract
says makes every object invisible to every other value.
"""

from __future__ import annotations

import hashlib
import http.client as httpclient
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.servers import Gateway, GatewayFactory, MockUpstream, upstream_config

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/images/generations")
TERMINAL = ("completed", "failed", "cancelled", "expired")
BATCH_ID = re.compile(r"^batch_[0-9a-f]{32}$")
POLL_DEADLINE = 30.0
FILE_FIELDS = ("id", "object", "bytes", "created_at", "filename", "purpose", "expires_at", "status", "sha256")
MKA1 = "/api/v1/llm"
OPENAI = "/v1"


# --- module-scoped servers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, request, stack):
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1] + "-" + stack.replace("+", "-"))


@pytest.fixture(scope="module")
def make_module_upstream(module_dir):
    started: list[MockUpstream] = []

    def make(latency: float = 0.0) -> MockUpstream:
        folder = module_dir / f"upstream{len(started)}"
        folder.mkdir()
        upstream = MockUpstream(folder, latency)
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        upstream.stop()


@pytest.fixture(scope="module")
def make_module_gateway(module_dir, backing):
    """make(config_text="", env={}) → a running Gateway that lives for the whole module."""
    factory = GatewayFactory(module_dir, backing)
    yield factory
    factory.stop_all()
    # Whatever the module's tests did, no gateway may have hit an unhandled exception.
    troubled = [
        (g.folder, serve_log(g))
        for g in factory.started
        if "unhandled error" in serve_log(g) or "Traceback" in serve_log(g)
    ]
    if troubled:
        folder, log = troubled[0]
        pytest.fail(f"gateway in {folder} logged an unhandled exception:\n{log[-4000:]}")


@pytest.fixture(scope="module")
def module_upstream(make_module_upstream):
    return make_module_upstream()


@pytest.fixture(scope="module")
def module_gateway(make_module_gateway, module_upstream):
    """One gateway per module routing every model to `module_upstream`."""
    return make_module_gateway(upstream_config(("mock", module_upstream.base_url, ["*"])))


@pytest.fixture
def unique_obo() -> str:
    """An X-On-Behalf-Of value no other test uses: a private namespace on a shared gateway."""
    return "t-" + uuid.uuid4().hex[:16]


# --- JSONL builders ----------------------------------------------------------------------------


def body_for(endpoint: str, text: str, model: str = "m") -> dict:
    if endpoint == "/v1/chat/completions":
        return {"model": model, "messages": [{"role": "user", "content": text}]}
    if endpoint in ("/v1/embeddings", "/v1/responses"):
        return {"model": model, "input": text}
    if endpoint == "/v1/images/generations":
        return {"model": model, "prompt": text}
    raise ValueError(endpoint)


def request_line(
    custom_id: str, text: str, *, endpoint: str = "/v1/chat/completions", model: str = "m", **overrides: Any
) -> dict:
    line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body_for(endpoint, text, model)}
    line.update(overrides)
    return line


def jsonl(lines: Iterable[dict | bytes | str], newline: bytes = b"\n") -> bytes:
    out = bytearray()
    for line in lines:
        if isinstance(line, dict):
            out += json.dumps(line).encode()
        elif isinstance(line, str):
            out += line.encode()
        else:
            out += line
        out += newline
    return bytes(out)


def parse_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def words(text: str) -> int:
    """How the mock counts tokens: whitespace-separated words, at least 1."""
    return len(text.split()) or 1


def mock_request_id(text: str) -> str:
    return "req_" + hashlib.md5(text.encode()).hexdigest()[:16]


# --- raw HTTP ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


_NO_KEY = object()


def http(
    gateway: Gateway,
    method: str,
    path: str,
    *,
    key: Any = _NO_KEY,
    obo: str | None = None,
    body: bytes | dict | list | None = None,
    headers: dict[str, str] | None = None,
    content_type: str | None = None,
    allow_5xx: bool = False,
) -> Reply:
    """One plain HTTP request (http.client, no SDK). key=None sends no Authorization header.

    A 5xx answer fails the calling test unless allow_5xx: the gateway must never answer one to a client.
    """
    sent = dict(headers or {})
    key = gateway.key if key is _NO_KEY else key
    if key is not None:
        sent.setdefault("Authorization", f"Bearer {key}")
    if obo is not None:
        sent["X-On-Behalf-Of"] = obo
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    if content_type is not None:
        sent["Content-Type"] = content_type
    connection = httpclient.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=sent)
        answer = connection.getresponse()
        data = answer.read()
        header_list = answer.getheaders()
    finally:
        connection.close()
    reply = Reply(answer.status, {k.lower(): v for k, v in header_list}, data, header_list)
    if not allow_5xx:
        assert reply.status < 500, f"{method} {path} answered {reply.status}: {data[:500]!r}"
    return reply


def assert_error_reply(reply: Reply, status: int | tuple[int, ...]) -> dict:
    """The reply has the expected status and the contract's error shape; returns the `error` object."""
    statuses = (status,) if isinstance(status, int) else status
    assert reply.status in statuses, f"expected {statuses}, got {reply.status}: {reply.body[:500]!r}"
    assert reply.content_type == "application/json", reply.headers
    payload = reply.json
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert isinstance(error["type"], str) and error["type"], error
    return error


def multipart(
    parts: list[tuple[str, str | None, bytes, str | None]], boundary: str = "bgtestboundary"
) -> tuple[bytes, str]:
    """Encode (name, filename or None, content, part content-type or None) parts; returns (body, content-type)."""
    out = bytearray()
    for name, filename, content, part_type in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += disposition.encode() + b"\r\n"
        if part_type:
            out += f"Content-Type: {part_type}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def upload_raw(
    gateway: Gateway,
    content: bytes,
    *,
    filename: str | None = "in.jsonl",
    purpose: str | None = "batch",
    prefix: str = OPENAI,
    obo: str | None = None,
    key: Any = _NO_KEY,
) -> Reply:
    parts = []
    if purpose is not None:
        parts.append(("purpose", None, purpose.encode(), None))
    parts.append(("file", filename, content, "application/octet-stream"))
    body, ctype = multipart(parts)
    return http(gateway, "POST", f"{prefix}/files", body=body, content_type=ctype, obo=obo, key=key)


def create_batch_raw(
    gateway: Gateway,
    file_id: str,
    endpoint: str = "/v1/chat/completions",
    *,
    prefix: str = OPENAI,
    obo: str | None = None,
    key: Any = _NO_KEY,
    **extra: Any,
) -> Reply:
    """POST a create-batch body; `extra` become body fields."""
    payload = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra}
    return http(gateway, "POST", f"{prefix}/batches", body=payload, obo=obo, key=key)


def wait_until(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    timeout: float = POLL_DEADLINE,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Call fetch() until done(value); fail after `timeout` seconds (never more than 30)."""
    deadline = time.monotonic() + min(timeout, POLL_DEADLINE)
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last value: {value!r}")
        time.sleep(interval)


def wait_batch_raw(
    gateway: Gateway,
    batch_id: str,
    *,
    obo: str | None = None,
    prefix: str = OPENAI,
    statuses: tuple[str, ...] = TERMINAL,
    key: Any = _NO_KEY,
) -> dict:
    def fetch() -> dict:
        reply = http(gateway, "GET", f"{prefix}/batches/{batch_id}", obo=obo, key=key)
        assert reply.status == 200, reply.body
        return reply.json

    return wait_until(fetch, lambda b: b["status"] in statuses, what=f"batch {batch_id} in {statuses}")


def run_batch_raw(
    gateway: Gateway, content: bytes, endpoint: str = "/v1/chat/completions", *, obo: str | None = None, **extra: Any
) -> dict:
    """Upload, create and wait for a terminal status, all over raw HTTP; returns the final batch JSON."""
    uploaded = upload_raw(gateway, content, obo=obo)
    assert uploaded.status == 200, uploaded.body
    created = create_batch_raw(gateway, uploaded.json["id"], endpoint, obo=obo, **extra)
    assert created.status == 200, created.body
    return wait_batch_raw(gateway, created.json["id"], obo=obo)


def file_bytes_raw(gateway: Gateway, file_id: str, *, obo: str | None = None) -> bytes:
    reply = http(gateway, "GET", f"{OPENAI}/files/{file_id}/content", obo=obo)
    assert reply.status == 200, reply.body
    return reply.body


def serve_log(gateway: Gateway) -> str:
    path = gateway.folder / "serve.log"
    return path.read_text(errors="replace") if path.exists() else ""
