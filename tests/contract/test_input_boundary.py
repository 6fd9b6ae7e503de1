"""What a client may send that no SDK would: bodies in pieces, bad encodings, odd headers and numbers,
deep JSON. Each is answered with a 4xx in the contract's JSON shape (or read correctly), never a 5xx.

Raw sockets send what http.client or an SDK would refuse to; every test shares one gateway.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import urllib.parse
import uuid

import openai
import pytest

from tests.contract.conftest import (
    OPENAI,
    Reply,
    assert_error_reply,
    create_batch_raw,
    http,
    jsonl,
    multipart,
    request_line,
    serve_log,
    upload_raw,
    wait_batch_raw,
)
from tests.support.servers import MockUpstream, upstream_config

BODY_LIMIT = 1_000_000
DEPTH_LIMIT = 32


@pytest.fixture(scope="module")
def plain_upstream(module_dir):
    """An upstream that answers `stream: true` with one whole JSON object."""
    folder = module_dir / "plain-upstream"
    folder.mkdir()
    upstream = MockUpstream(folder, 0.0, True, "--ignore-stream")
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(make_module_gateway, module_upstream, plain_upstream):
    config = upstream_config(("plain", plain_upstream.base_url, ["plain-*"]), ("mock", module_upstream.base_url, ["*"]))
    return make_module_gateway(
        config, env={"BATCHGATE_MAX_JSON_BODY_BYTES": str(BODY_LIMIT), "BATCHGATE_MAX_JSON_DEPTH": str(DEPTH_LIMIT)}
    )


@pytest.fixture
def obo() -> str:
    return "ib-" + uuid.uuid4().hex[:12]


# --- raw HTTP over a socket ---------------------------------------------------------------------------


def head(gw, method: str, path: str, headers: dict[str, str | bytes]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [
        name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        for name, value in headers.items()
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _exchange(port: int, pieces: list[bytes], pause: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(pause)  # the server sees the body arrive in separate reads
            writer.write(piece)
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


async def _leave(port: int, data: bytes) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()


def send_and_leave(gw, data: bytes) -> None:
    asyncio.run(_leave(gw.port, data))


def raw_request(gw, pieces: list[bytes], pause: float = 0.2) -> Reply:
    answer = asyncio.run(_exchange(gw.port, pieces, pause))
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode("latin-1").split(": ", 1) for line in header_block.split(b"\r\n") if b": " in line)
    reply = Reply(int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body)
    if "chunked" in reply.headers.get("transfer-encoding", ""):
        reply.body = _unchunk(body)
    return reply


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


def post_json(gw, path: str, body: bytes, obo: str, **headers: str | bytes) -> list[bytes]:
    """The request as [head, body] with the gateway's key."""
    sent = {
        "Authorization": f"Bearer {gw.key}",
        "X-On-Behalf-Of": obo,
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **headers,
    }
    return [head(gw, "POST", path, sent), body]


def chat(text: str, model: str = "m", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def uploaded(gw, obo: str, lines: list[dict | bytes]) -> str:
    reply = upload_raw(gw, jsonl(lines), obo=obo)
    assert reply.status == 200, reply.body
    return reply.json["id"]


# --- 1. bodies are read whole, up to one limit -------------------------------------------------------


def test_a_json_body_in_pieces_is_read_whole_and_a_client_gone_mid_body_is_no_error(gw, obo):
    file_id = uploaded(gw, obo, [request_line("a", "hi")])
    body = json.dumps(
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    ).encode()
    request = post_json(gw, f"{OPENAI}/batches", body, obo)
    send_and_leave(gw, request[0] + body[:10])  # declares more than it sends
    created = raw_request(gw, [request[0] + body[:10], body[10:]])
    assert created.status == 200, created.body
    assert json.loads(created.body)["input_file_id"] == file_id

    big = json.dumps(chat("many words " * 45_000)).encode()  # ~600 KB, well under the limit
    request = post_json(gw, f"{OPENAI}/chat/completions", big, obo)
    answered = raw_request(gw, [request[0] + big[:300_000], big[300_000:]])
    assert answered.status == 200, answered.body[:300]
    assert json.loads(answered.body)["choices"][0]["message"]["content"].startswith("echo: many words")
    assert "Traceback" not in serve_log(gw)


def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(gw, obo):
    declared = raw_request(
        gw,
        [
            head(
                gw,
                "POST",
                f"{OPENAI}/batches",
                {
                    "Authorization": f"Bearer {gw.key}",
                    "Content-Type": "application/json",
                    "Content-Length": str(BODY_LIMIT + 1),
                },
            )
        ],
    )
    assert assert_error_reply(declared, 413)["code"] == "payload_too_large"

    chunk = b"[" + b"1," * 50_000 + b"1]"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"
    chunked = raw_request(
        gw,
        [
            head(
                gw,
                "POST",
                f"{OPENAI}/chat/completions",
                {
                    "Authorization": f"Bearer {gw.key}",
                    "Content-Type": "application/json",
                    "Transfer-Encoding": "chunked",
                },
            )
            + chunks
        ],
    )
    error = assert_error_reply(chunked, 413)
    assert str(BODY_LIMIT) in error["message"]


# --- 2. no 5xx from client input -----------------------------------------------------------------------


def test_headers_that_are_not_utf8_are_refused_with_json(gw, obo):
    no_key = raw_request(gw, [head(gw, "GET", f"{OPENAI}/files", {"Authorization": b"Bearer \xff\xfe\xfd"})])
    assert assert_error_reply(no_key, 401)["type"] == "authentication_error"
    bad_obo = raw_request(
        gw,
        [head(gw, "GET", f"{OPENAI}/files", {"Authorization": f"Bearer {gw.key}", "X-On-Behalf-Of": b"team-\xc3\x28"})],
    )
    error = assert_error_reply(bad_obo, 400)
    assert (error["code"], error["param"]) == ("invalid_header", "X-On-Behalf-Of")


def test_a_filename_that_is_not_utf8_is_kept_cleaned(gw, obo):
    form = (
        b'--bb\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--bb\r\nContent-Disposition: form-data; name="file"; filename="in\xff\xfe.jsonl"\r\n\r\n'
        + jsonl([request_line("a", "hi")])
        + b"\r\n--bb--\r\n"
    )
    reply = raw_request(
        gw, post_json(gw, f"{OPENAI}/files", form, obo, **{"Content-Type": "multipart/form-data; boundary=bb"})
    )
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["filename"] == "in__.jsonl"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_corrupt_compressed_body_is_a_400_on_json_routes_and_uploads(gw, obo, encoding):
    garbage = b"\x1f\x8b\x08\x00 this is not compressed data at all"
    for path in (f"{OPENAI}/batches", f"{OPENAI}/chat/completions"):
        reply = raw_request(gw, post_json(gw, path, garbage, obo, **{"Content-Encoding": encoding}))
        error = assert_error_reply(reply, 400)
        assert error["code"] == "invalid_content_encoding" and encoding in error["message"]
    _form, ctype = multipart([("purpose", None, b"batch", None), ("file", "in.jsonl", b"{}\n", None)])
    reply = raw_request(
        gw, post_json(gw, f"{OPENAI}/files", garbage, obo, **{"Content-Encoding": encoding, "Content-Type": ctype})
    )
    assert assert_error_reply(reply, 400)["code"] == "invalid_content_encoding"
    good = gzip.compress(json.dumps(chat("zipped")).encode())
    reply = raw_request(gw, post_json(gw, f"{OPENAI}/chat/completions", good, obo, **{"Content-Encoding": "gzip"}))
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("digits", ["３６００", "٣٦٠٠", "3600²"])
def test_numbers_in_forms_and_queries_take_ascii_digits_only(gw, obo, digits):
    form, ctype = multipart(
        [
            ("purpose", None, b"batch", None),
            ("expires_after[anchor]", None, b"created_at", None),
            ("expires_after[seconds]", None, digits.encode(), None),
            ("file", "in.jsonl", jsonl([request_line("a", "hi")]), None),
        ]
    )
    reply = http(gw, "POST", f"{OPENAI}/files", body=form, content_type=ctype, obo=obo)
    assert assert_error_reply(reply, 400)["code"] == "invalid_expires_after"
    for listing in ("files", "batches"):
        reply = http(gw, "GET", f"{OPENAI}/{listing}?limit={urllib.parse.quote(digits)}", obo=obo)
        assert assert_error_reply(reply, 400)["param"] == "limit"


def test_deep_json_and_huge_numbers_are_4xx_in_bodies_and_line_errors_in_batches(gw, obo):
    deep = b'{"model": "m", "messages": ' + b"[" * 300 + b"]" * 300 + b"}"
    for path in (f"{OPENAI}/chat/completions", f"{OPENAI}/batches"):
        reply = raw_request(gw, post_json(gw, path, deep, obo))
        error = assert_error_reply(reply, 400)
        assert error["code"] == "json_too_deep" and str(DEPTH_LIMIT) in error["message"]
        huge = raw_request(gw, post_json(gw, path, b'{"model": "m", "n": 1e999999}', obo))
        assert assert_error_reply(huge, 400)["code"] == "invalid_json"

    good = json.dumps(request_line("ok", "fine")).encode()
    nested = (
        b'{"custom_id": "deep", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "x": '
        + b"[" * 300
        + b"]" * 300
        + b"}}"
    )
    huge = (
        b'{"custom_id": "big", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "n": 1'
        + b"0" * 5000
        + b"}}"
    )
    file_id = uploaded(gw, obo, [good, nested, huge])
    batch = wait_batch_raw(gw, create_batch_raw(gw, file_id, obo=obo).json["id"], obo=obo)
    assert batch["status"] == "failed", batch
    codes = {e["line"]: e["code"] for e in batch["errors"]["data"]}
    assert codes == {2: "json_too_deep", 3: "invalid_json_line"}


# --- 3. a stream from an upstream that answered whole --------------------------------------------------


def test_an_upstream_that_ignores_stream_still_streams_to_the_openai_sdk(gw, obo):
    client = openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=gw.key, default_headers={"X-On-Behalf-Of": obo}, max_retries=0
    )
    chunks = list(
        client.chat.completions.create(
            model="plain-m", messages=[{"role": "user", "content": "two words"}], stream=True
        )
    )
    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: two words"
    assert chunks[-1].choices[0].finish_reason == "stop"
    relayed = list(
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "one two three"}], stream=True)
    )  # an upstream that streams is relayed as it comes
    assert len(relayed) > 2 and "".join(c.choices[0].delta.content or "" for c in relayed) == "echo: one two three"
    with pytest.raises(openai.BadRequestError) as refused:
        list(
            client.chat.completions.create(
                model="plain-m", messages=[{"role": "user", "content": "[status:400]"}], stream=True
            )
        )
    assert refused.value.status_code == 400 and refused.value.body["code"] == "mock_400"


def test_a_stream_the_upstream_ends_before_its_first_event_is_a_502_not_an_empty_200(gw, obo):
    reply = http(
        gw,
        "POST",
        f"{OPENAI}/responses",
        obo=obo,
        allow_5xx=True,
        body={"model": "m", "input": "hello [cut:1]", "stream": True},
    )  # the mock ends it at once
    error = assert_error_reply(reply, 502)
    assert error["code"] == "upstream_unreachable" and "before its first event" in error["message"]


# --- 4. list cursors and order --------------------------------------------------------------------------


def test_an_unknown_cursor_is_a_400_naming_it_and_batches_check_their_order(gw, obo):
    for listing, unknown in (("files", "file-" + "0" * 24), ("batches", "batch_" + "0" * 32)):
        error = assert_error_reply(http(gw, "GET", f"{OPENAI}/{listing}?after={unknown}", obo=obo), 400)
        assert error["param"] == "after" and unknown in error["message"]
    error = assert_error_reply(http(gw, "GET", f"{OPENAI}/batches?order=sideways", obo=obo), 400)
    assert (error["param"], error["code"]) == ("order", "invalid_order")

    file_id = uploaded(gw, obo, [request_line("a", "hi")])
    made = [create_batch_raw(gw, file_id, obo=obo).json["id"] for _ in range(3)]
    ascending = http(gw, "GET", f"{OPENAI}/batches?order=asc&after={made[0]}", obo=obo).json
    assert [b["id"] for b in ascending["data"]] == made[1:]
