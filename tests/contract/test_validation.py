"""Broken input files fail their batch with precise, 1-based line errors; broken uploads are 4xx JSON."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import uuid

import pytest
from openai import OpenAI

from tests.contract.conftest import (
    MKA1,
    OPENAI,
    TERMINAL,
    assert_error_reply,
    create_batch_raw,
    http,
    jsonl,
    multipart,
    parse_jsonl,
    request_line,
    upload_raw,
    wait_batch_raw,
    wait_until,
)
from tests.support.servers import upstream_config

MAX_LINES = 3
MAX_LINE_BYTES = 200
MAX_FILE_BYTES = 4000


@pytest.fixture(scope="module")
def limited(make_module_gateway, module_upstream):
    """A gateway with small limits: 3 requests per file, 200-byte lines, 4000-byte files."""
    return make_module_gateway(
        upstream_config(("mock", module_upstream.base_url, ["*"])),
        name="limited",
        env={
            "BATCHGATE_MAX_LINES": str(MAX_LINES),
            "BATCHGATE_MAX_LINE_BYTES": str(MAX_LINE_BYTES),
            "BATCHGATE_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        },
    )


@pytest.fixture
def obo() -> str:
    return "val-" + uuid.uuid4().hex[:12]


def client_for(gateway, obo: str) -> OpenAI:
    return OpenAI(
        base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, default_headers={"X-On-Behalf-Of": obo}
    )


def run_file(gateway, obo: str, data: bytes, endpoint: str = "/v1/chat/completions"):
    """Upload `data` through the openai SDK, create a batch and wait for a terminal status."""
    with client_for(gateway, obo) as client:
        file = client.files.create(file=("input.jsonl", data), purpose="batch")
        assert file.bytes == len(data)
        created = client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h")
        return wait_until(
            lambda: client.batches.retrieve(created.id), lambda b: b.status in TERMINAL, what="terminal status"
        )


def line_errors(batch) -> list[tuple[str, int | None]]:
    assert batch.errors is not None and batch.errors.data, f"a failed batch must say why: {batch}"
    return [(e.code, e.line) for e in batch.errors.data]


def assert_failed_with(batch, expected: list[tuple[str, int]]) -> None:
    assert batch.status == "failed", f"expected failed, got {batch.status} ({batch.errors})"
    assert batch.failed_at is not None and batch.failed_at >= batch.created_at
    assert batch.in_progress_at is None and batch.completed_at is None
    assert batch.output_file_id is None and batch.error_file_id is None
    assert line_errors(batch) == expected
    for error in batch.errors.data:
        assert error.message and isinstance(error.message, str)
    assert batch.errors.object == "list"


def good(cid: str, text: str = "fine") -> bytes:
    return json.dumps(request_line(cid, text)).encode()


# --- line errors -----------------------------------------------------------------------------------

CHAT = "/v1/chat/completions"

LINE_CASES = {
    "invalid_json": ([good("a"), b'{"custom_id": "b", "method": "POST",', good("c")], "invalid_json_line", 2),
    "json_array": ([good("a"), good("b"), b'[{"custom_id": "c"}]'], "invalid_json_line", 3),
    "json_string": ([b'"just a string"', good("b")], "invalid_json_line", 1),
    "missing_custom_id": (
        [good("a"), json.dumps({"method": "POST", "url": CHAT, "body": {"model": "m", "messages": []}}).encode()],
        "missing_custom_id",
        2,
    ),
    "duplicate_custom_id": ([good("a"), good("b"), good("a"), good("c")], "duplicate_custom_id", 3),
    "url_mismatch": ([good("a"), json.dumps(request_line("b", "x", url="/v1/embeddings")).encode()], "url_mismatch", 2),
    "wrong_method": ([json.dumps(request_line("a", "x", method="GET")).encode(), good("b")], "invalid_method", 1),
    "missing_body": (
        [good("a"), json.dumps({"custom_id": "b", "method": "POST", "url": CHAT}).encode()],
        "missing_body",
        2,
    ),
    "missing_model": (
        [
            good("a"),
            good("b"),
            json.dumps({"custom_id": "c", "method": "POST", "url": CHAT, "body": {"messages": []}}).encode(),
        ],
        "missing_model",
        3,
    ),
    "invalid_utf8": (
        [
            good("a"),
            b'{"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", '
            b'"body": {"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}}',
        ],
        "invalid_utf8",
        2,
    ),
}


@pytest.mark.parametrize("case", LINE_CASES)
def test_a_bad_line_fails_the_batch_with_its_code_and_line(module_gateway, obo, case):
    lines, code, line = LINE_CASES[case]
    batch = run_file(module_gateway, obo, jsonl(lines))
    assert_failed_with(batch, [(code, line)])
    assert batch.request_counts.completed == 0


def test_a_failed_batch_sends_nothing_upstream(module_gateway, module_upstream, obo):
    tag = uuid.uuid4().hex[:8]
    data = jsonl([good("a", f"first {tag}"), b"not json", good("c", f"third {tag}")])
    batch = run_file(module_gateway, obo, data)
    assert_failed_with(batch, [("invalid_json_line", 2)])
    assert [r for r in module_upstream.requests() if tag in r["text"]] == []


def test_errors_of_several_kinds_are_all_reported_in_line_order(module_gateway, obo):
    data = jsonl(
        [
            good("a"),  # 1 fine
            b"{oops",  # 2 invalid JSON
            json.dumps(request_line("c", "x", url="/v1/responses")).encode(),  # 3 url mismatch
            good("a"),  # 4 duplicate of line 1
            b"",  # 5 blank: skipped, still counted
            json.dumps({"custom_id": "f", "method": "POST", "url": CHAT}).encode(),  # 6 no body
            good("g"),  # 7 fine
        ]
    )
    batch = run_file(module_gateway, obo, data)
    assert_failed_with(
        batch, [("invalid_json_line", 2), ("url_mismatch", 3), ("duplicate_custom_id", 4), ("missing_body", 6)]
    )


def test_an_empty_file_fails_with_empty_file(module_gateway, obo):
    batch = run_file(module_gateway, obo, b"")
    assert batch.status == "failed"
    assert [e.code for e in batch.errors.data] == ["empty_file"]


def test_blank_lines_only_fail_with_empty_file(module_gateway, obo):
    batch = run_file(module_gateway, obo, b"\n\n   \n\t\n\r\n")
    assert batch.status == "failed"
    assert [e.code for e in batch.errors.data] == ["empty_file"]


def test_blank_lines_between_requests_are_skipped_and_keep_line_numbers(module_gateway, obo):
    data = b"\n" + good("a") + b"\n\n" + good("b") + b"\n   \n" + b"{bad" + b"\n"
    batch = run_file(module_gateway, obo, data)
    assert_failed_with(batch, [("invalid_json_line", 6)])


def test_crlf_line_endings_are_accepted(module_gateway, obo):
    texts = {"a": "carriage one", "b": "carriage two", "c": "carriage three"}
    data = jsonl([request_line(cid, t) for cid, t in texts.items()], newline=b"\r\n")
    batch = run_file(module_gateway, obo, data)
    assert batch.status == "completed", batch.errors
    assert batch.request_counts.total == 3 and batch.request_counts.completed == 3
    with client_for(module_gateway, obo) as client:
        output = parse_jsonl(client.files.content(batch.output_file_id).content)
    answers = {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"] for line in output}
    assert answers == {cid: f"echo: {t}" for cid, t in texts.items()}


def test_a_final_line_without_newline_counts(module_gateway, obo):
    data = good("a") + b"\n" + good("b")
    batch = run_file(module_gateway, obo, data)
    assert batch.status == "completed" and batch.request_counts.total == 2


def test_only_the_first_100_errors_are_reported(module_gateway, obo):
    # 150 bad lines on even line numbers 2..300, good lines between them.
    lines = []
    for i in range(150):
        lines.append(good(f"ok{i}"))
        lines.append(b"{not json " + str(i).encode())
    batch = run_file(module_gateway, obo, jsonl(lines))
    assert batch.status == "failed"
    reported = line_errors(batch)
    assert len(reported) == 100
    assert reported == [("invalid_json_line", 2 * (i + 1)) for i in range(100)]


def test_first_100_errors_include_an_early_duplicate(module_gateway, obo):
    # Line 2 repeats line 1's custom_id; lines 3..122 are not JSON. The first 100 errors are lines 2..101.
    lines = [good("same"), good("same")] + [b"{broken" for _ in range(120)]
    batch = run_file(module_gateway, obo, jsonl(lines))
    assert batch.status == "failed"
    reported = line_errors(batch)
    assert len(reported) == 100
    assert reported[0] == ("duplicate_custom_id", 2)
    assert [line for _, line in reported] == list(range(2, 102))


# --- limits (a gateway started with small limits) ---------------------------------------------------


def padded(cid: str, size: int, newline: bytes = b"") -> bytes:
    """A valid request line of exactly `size` bytes (before its newline)."""
    base = json.dumps(request_line(cid, "")).encode()
    pad = size - len(base)
    assert pad >= 0
    line = json.dumps(request_line(cid, "x" * pad)).encode()
    assert len(line) == size
    return line


def test_too_many_lines_fails_with_too_many_tasks(limited, obo):
    batch = run_file(limited, obo, jsonl([good(f"n{i}") for i in range(MAX_LINES + 2)]))
    assert batch.status == "failed"
    assert line_errors(batch)[0] == ("too_many_tasks", MAX_LINES + 1)


def test_exactly_max_lines_is_accepted(limited, obo):
    batch = run_file(limited, obo, jsonl([good(f"n{i}") for i in range(MAX_LINES)] + [b"", b"  "]))
    assert batch.status == "completed", batch.errors
    assert batch.request_counts.total == MAX_LINES


def test_a_line_over_the_byte_limit_fails_with_its_line(limited, obo):
    data = jsonl([padded("a", MAX_LINE_BYTES), padded("b", MAX_LINE_BYTES + 1), padded("c", 150)])
    batch = run_file(limited, obo, data)
    assert_failed_with(batch, [("line_too_long", 2)])


def test_a_very_long_line_is_reported_and_later_lines_still_checked(limited, obo):
    data = jsonl([good("a"), b'{"custom_id": "' + b"z" * 2500 + b'"}', b"[1]"])
    batch = run_file(limited, obo, data)
    assert_failed_with(batch, [("line_too_long", 2), ("invalid_json_line", 3)])


def test_a_line_at_the_byte_limit_with_crlf_is_accepted(limited, obo):
    data = jsonl([padded("a", MAX_LINE_BYTES), padded("b", MAX_LINE_BYTES)], newline=b"\r\n")
    batch = run_file(limited, obo, data)
    assert batch.status == "completed", batch.errors


# --- upload errors ------------------------------------------------------------------------------------

PREFIXES = pytest.mark.parametrize("prefix", [MKA1, OPENAI], ids=["mka1", "openai"])


def assert_no_files(gateway, obo: str, prefix: str) -> None:
    listing = http(gateway, "GET", f"{prefix}/files", obo=obo)
    assert listing.status == 200 and listing.json["data"] == [], "a rejected upload must not leave a file"


@PREFIXES
def test_upload_without_a_file_part_is_400(module_gateway, obo, prefix):
    body, ctype = multipart([("purpose", None, b"batch", None)])
    reply = http(module_gateway, "POST", f"{prefix}/files", body=body, content_type=ctype, obo=obo)
    error = assert_error_reply(reply, 400)
    assert error["param"] == "file"
    assert_no_files(module_gateway, obo, prefix)


@PREFIXES
@pytest.mark.parametrize("purpose", ["fine-tune", "batch_output", "assistants", "", "BATCH"])
def test_upload_with_a_wrong_purpose_is_400(module_gateway, obo, prefix, purpose):
    reply = upload_raw(module_gateway, good("a") + b"\n", purpose=purpose, prefix=prefix, obo=obo)
    error = assert_error_reply(reply, 400)
    assert error["param"] == "purpose"
    assert_no_files(module_gateway, obo, prefix)


@PREFIXES
def test_upload_without_purpose_is_400(module_gateway, obo, prefix):
    reply = upload_raw(module_gateway, good("a") + b"\n", purpose=None, prefix=prefix, obo=obo)
    error = assert_error_reply(reply, 400)
    assert error["param"] == "purpose"
    assert_no_files(module_gateway, obo, prefix)


@PREFIXES
@pytest.mark.parametrize("filename", [None, "", "   ", "blob"], ids=["absent", "empty", "spaces", "blob"])
def test_upload_without_a_filename_is_400(module_gateway, obo, prefix, filename):
    reply = upload_raw(module_gateway, good("a") + b"\n", filename=filename, prefix=prefix, obo=obo)
    error = assert_error_reply(reply, 400)
    assert error["param"] == "file"
    assert_no_files(module_gateway, obo, prefix)


@PREFIXES
def test_upload_that_is_not_multipart_is_400(module_gateway, obo, prefix):
    reply = http(module_gateway, "POST", f"{prefix}/files", body={"purpose": "batch", "file": "x"}, obo=obo)
    assert_error_reply(reply, 400)
    assert_no_files(module_gateway, obo, prefix)


@PREFIXES
def test_upload_with_two_file_parts_is_400(module_gateway, obo, prefix):
    body, ctype = multipart(
        [("purpose", None, b"batch", None), ("file", "a.jsonl", b"{}\n", None), ("file", "b.jsonl", b"{}\n", None)]
    )
    reply = http(module_gateway, "POST", f"{prefix}/files", body=body, content_type=ctype, obo=obo)
    assert_error_reply(reply, 400)
    assert_no_files(module_gateway, obo, prefix)


@PREFIXES
@pytest.mark.parametrize("size", [MAX_FILE_BYTES + 1, 3 * MAX_FILE_BYTES, 200_000])
def test_upload_over_the_file_size_limit_is_413(limited, obo, prefix, size):
    reply = upload_raw(limited, b"x" * size, prefix=prefix, obo=obo)
    error = assert_error_reply(reply, 413)
    assert error["type"] == "invalid_request_error"
    assert_no_files(limited, obo, prefix)


def test_upload_at_the_file_size_limit_is_accepted(limited, obo):
    reply = upload_raw(limited, b"y" * MAX_FILE_BYTES, obo=obo)
    assert reply.status == 200, reply.body
    assert reply.json["bytes"] == MAX_FILE_BYTES


def test_upload_accepts_file_part_before_purpose_and_any_part_type(module_gateway, obo):
    data = good("a") + b"\n"
    body, ctype = multipart([("file", "first.jsonl", data, "application/jsonl"), ("purpose", None, b"batch", None)])
    reply = http(module_gateway, "POST", f"{OPENAI}/files", body=body, content_type=ctype, obo=obo)
    assert reply.status == 200, reply.body
    assert reply.json["filename"] == "first.jsonl" and reply.json["bytes"] == len(data)


def sent_in_pieces(gateway, obo: str, body: bytes, content_type: str, pieces: int) -> dict:
    """POST /v1/files over a raw socket, the body in `pieces` writes with pauses, so it arrives cut up."""
    head = (
        f"POST {OPENAI}/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
        f"X-On-Behalf-Of: {obo}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head)
        step = -(-len(body) // pieces)
        for start in range(0, len(body), step):
            sock.sendall(body[start : start + step])
            time.sleep(0.01)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head_bytes, _, answer = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head_bytes.split(b"\r\n")[0], raw[:500]
    return json.loads(answer)


def test_a_file_with_crlf_lines_and_near_boundaries_arrives_whole_however_it_is_cut(module_gateway, obo):
    """Lines ending in CRLF and text like the boundary's start: each CR is looked at as a delimiter's start."""
    boundary = "bgtestboundary"
    lines = [good(f"c{i}", f"--{boundary[: i % len(boundary)]} \r-- {i}") for i in range(200)]
    data = b"\r\n".join(lines) + b"\r\n"
    body, ctype = multipart([("purpose", None, b"batch", None), ("file", "crlf.jsonl", data, None)], boundary)
    uploaded = sent_in_pieces(module_gateway, obo, body, ctype, pieces=97)
    assert uploaded["bytes"] == len(data)
    content = http(module_gateway, "GET", f"{OPENAI}/files/{uploaded['id']}/content", obo=obo)
    assert content.status == 200 and content.body == data
    listed = http(module_gateway, "GET", f"{OPENAI}/files?sha256={hashlib.sha256(data).hexdigest()}", obo=obo)
    assert [f["id"] for f in listed.json["data"]] == [uploaded["id"]], "the digest is of the bytes sent"
    batch = create_batch_raw(module_gateway, uploaded["id"], obo=obo)
    assert batch.status == 200, batch.body
    done = wait_batch_raw(module_gateway, batch.json["id"], obo=obo)
    assert done["status"] == "completed" and done["request_counts"] == {"total": 200, "completed": 200, "failed": 0}


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"--bgtestboundary\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch", "closing boundary"),
        (b"--bgtestboundary\r\nno colon here\r\n\r\nx\r\n--bgtestboundary--\r\n", "Name: value"),
        (b"no boundary anywhere\r\n", "never starts a line"),
    ],
    ids=["cut-before-the-end", "bad-header", "no-delimiter"],
)
def test_a_malformed_multipart_body_is_a_400_naming_the_fault(module_gateway, obo, body, reason):
    reply = http(module_gateway, "POST", f"{OPENAI}/files", body=body, content_type=CTYPE_BOUNDARY, obo=obo)
    error = assert_error_reply(reply, 400)
    assert error["code"] == "invalid_multipart" and reason in error["message"], error
    assert_no_files(module_gateway, obo, OPENAI)


def test_a_nested_multipart_part_is_refused(module_gateway, obo):
    body, ctype = multipart(
        [("purpose", None, b"batch", None), ("file", "in.jsonl", b"{}\n", "multipart/mixed; boundary=inner")]
    )
    reply = http(module_gateway, "POST", f"{OPENAI}/files", body=body, content_type=ctype, obo=obo)
    assert "Nested multipart" in assert_error_reply(reply, 400)["message"]
    assert_no_files(module_gateway, obo, OPENAI)


CTYPE_BOUNDARY = "multipart/form-data; boundary=bgtestboundary"


def test_a_batch_whose_input_file_was_deleted_is_not_created(module_gateway, obo):
    uploaded = upload_raw(module_gateway, good("a") + b"\n", obo=obo).json
    assert http(module_gateway, "DELETE", f"{OPENAI}/files/{uploaded['id']}", obo=obo).status == 200
    reply = create_batch_raw(module_gateway, uploaded["id"], obo=obo)
    assert_error_reply(reply, (400, 404))
