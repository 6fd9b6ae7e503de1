"""Slow, idle, numerous and malformed clients against a live gateway, over raw sockets.

One gateway with small limits: a head must be whole 1 s after its first byte, a body must bring
200 bytes in every 1 s span, an idle connection goes after 4 s, and 12 connections are served at once.
"""

from __future__ import annotations

import select
import socket
import time
import uuid

import pytest

from tests.contract.conftest import Reply, assert_error_reply, http, multipart, serve_log

LIMITS = {
    "BATCHGATE_HEADER_TIMEOUT_SECONDS": "1",
    "BATCHGATE_BODY_TIMEOUT_SECONDS": "1",
    "BATCHGATE_BODY_MIN_BYTES_PER_SECOND": "200",
    "BATCHGATE_IDLE_TIMEOUT_SECONDS": "4",
    "BATCHGATE_MAX_CONNECTIONS": "12",
    "BATCHGATE_LOG_LEVEL": "info",
}
GIVE_UP = 10.0  # far past every limit above: a connection still open by then was never cut


@pytest.fixture(scope="module")
def gateway(make_module_gateway):
    return make_module_gateway(env=LIMITS)


def connect(gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=GIVE_UP)


def read_to_end(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return Reply(int(status_line.split()[1]), headers, body)


def trickle_until_answered(sock: socket.socket, payload: bytes, interval: float = 0.25) -> bytes:
    """Send `payload` a byte at a time until the server answers or closes; what it sent back."""
    deadline = time.monotonic() + GIVE_UP
    for byte in payload:
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            return read_to_end(sock)
        assert time.monotonic() < deadline, "the server let a trickling client hold its connection"
        sock.sendall(bytes([byte]))
    raise AssertionError("the whole trickle was sent and nothing was answered")


def healthz_ok(gateway) -> bool:
    return http(gateway, "GET", "/healthz", key=None).status == 200


def test_a_head_sent_byte_by_byte_is_answered_408_and_closed(gateway):
    with connect(gateway) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert healthz_ok(gateway)  # others are served meanwhile
        raw = trickle_until_answered(slow, b"X-Slow: " + b"a" * 200 + b"\r\n\r\n")
    reply = parse(raw)
    error = assert_error_reply(reply, 408)
    assert error["code"] == "request_timeout"
    assert reply.headers.get("connection", "").lower() == "close"
    assert healthz_ok(gateway)


def test_a_connection_ended_by_a_deadline_still_reads_so_its_answer_is_not_reset(gateway):
    # A socket closed with the client's bytes unread sends a reset, which can destroy the answer before
    # the client reads it. So the server half-closes and reads on for a while: bytes the client sends
    # after the answer are taken, and nothing resets the connection.
    with connect(gateway) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        reply = parse(read_to_end(slow))  # the 408, then the server's FIN
        assert assert_error_reply(reply, 408)["code"] == "request_timeout"
        slow.sendall(b"X-Late: 1\r\n")
        time.sleep(0.3)  # time for a reset to come back, were the socket closed
        slow.sendall(b"X-Later: 1\r\n")
        assert slow.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def upload_head(gateway, content_type: str, length: int) -> bytes:
    return (
        f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
        f"X-On-Behalf-Of: t-{uuid.uuid4().hex[:12]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_body_that_trickles_is_ended_but_a_steady_one_is_not(gateway):
    lines = b"".join(
        b'{"custom_id": "r%d", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"model": "m", "messages": []}}\n' % i
        for i in range(40)
    )
    body, content_type = multipart([("purpose", None, b"batch", None), ("file", "in.jsonl", lines, None)])
    # Steady: about 1.2 KB a second over three spans, well above the minimum rate, is taken whole.
    with connect(gateway) as steady:
        steady.sendall(upload_head(gateway, content_type, len(body)))
        for start in range(0, len(body), 300):
            steady.sendall(body[start : start + 300])
            time.sleep(0.25)
        assert parse(steady.recv(65536)).status == 200
    # Trickling: a byte every quarter second is cut with a 408.
    with connect(gateway) as slow:
        slow.sendall(upload_head(gateway, content_type, len(body)) + body[:100])
        raw = trickle_until_answered(slow, body[100:])
    assert assert_error_reply(parse(raw), 408)["code"] == "request_timeout"
    assert healthz_ok(gateway)


def test_a_flood_beyond_the_cap_is_refused_while_connected_clients_are_served(gateway):
    early = connect(gateway)
    flood: list[socket.socket] = []
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        early.sendall(request)
        assert b" 200 " in early.recv(65536).split(b"\r\n")[0] + b" "
        flood = [connect(gateway) for _ in range(11)]  # with `early`, the cap of 12
        time.sleep(0.3)  # the server has taken them all
        refused = [connect(gateway) for _ in range(20)]
        for sock in refused:
            sock.sendall(request)
            reply = parse(read_to_end(sock))
            error = assert_error_reply(reply, 503)
            assert error["code"] == "too_many_connections"
            assert reply.headers.get("connection", "").lower() == "close"
            sock.close()
        early.sendall(request)  # a client connected before the flood is still served
        assert early.recv(65536).startswith(b"HTTP/1.1 200 ")
        # The idle limit lets the flood go by itself; then everyone is served again.
        for sock in flood:
            assert read_to_end(sock) == b""
        assert healthz_ok(gateway)
    finally:
        early.close()
        for sock in flood:
            sock.close()
    log = serve_log(gateway)
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "refused a connection" in line]) <= 3, log


MALFORMED = {
    "huge header": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        431,
        "request_header_too_large",
    ),
    "too many headers": (
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n",
        431,
        "request_header_too_large",
    ),
    "bad request line": (b"HELLO THERE\r\n\r\n", 400, "invalid_http_request"),
    "bad HTTP version": (b"GET /healthz HTTP/7.1\r\nHost: x\r\n\r\n", 400, "invalid_http_request"),
    "unknown Transfer-Encoding": (
        b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        "invalid_transfer_encoding",
    ),
    "malformed chunked body": (
        b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        400,
        "invalid_chunked_body",
    ),
    "unknown Content-Encoding": (
        b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Encoding: snappy\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        415,
        "unsupported_content_encoding",
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_the_http_parser_refusals_are_json(gateway, case):
    raw, status, code = MALFORMED[case]
    with connect(gateway) as sock:
        sock.sendall(raw)
        answer = parse(read_to_end(sock))  # and the server closes the connection
    error = assert_error_reply(answer, status)
    assert error["code"] == code
    assert healthz_ok(gateway)
