"""The lean HTTP/1.1 client against a scripted server on a real socket: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from batchgate.errors import UpstreamFailure
from batchgate.upstream.http1 import MAX_HEAD, Http1Pool, Origin


class ScriptedServer:
    """Reads each request whole, records it, and answers with the next scripted reply.

    A reply is raw bytes, or a list of byte pieces written one by one (a pause between each); a
    (reply, "close") pair closes the connection after the reply, a (reply, "hang") pair then says nothing more.
    """

    def __init__(self, *replies: bytes | list[bytes] | tuple[bytes | list[bytes], str]):
        self.replies = list(replies)
        self.requests: list[tuple[bytes, dict[str, str], bytes]] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ScriptedServer:
        self._closing = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._closing.set()
        for writer in self._writers:
            writer.close()
        self._server.close()

    def close_idle_connections(self) -> None:
        for writer in self._writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                start, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append((start.encode(), headers, body))
                reply, then = self.replies.pop(0), None
                if isinstance(reply, tuple):
                    reply, then = reply
                for piece in reply if isinstance(reply, list) else [reply]:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.001)
                if then == "hang":
                    await self._closing.wait()
                if then == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def pool(server: ScriptedServer, timeout: float = 5.0, path: str = "/v1") -> Http1Pool:
    return Http1Pool(
        Origin(f"http://127.0.0.1:{server.port}{path}"),
        {"Content-Type": "application/json", "Authorization": "Bearer k"},
        timeout,
    )


async def test_a_post_sends_one_well_formed_request_and_reads_the_answer():
    async with ScriptedServer(ok(b'{"id": 1}', "X-Request-Id: req-9\r\n")) as server:
        client = pool(server)
        answer = await client.post("/chat/completions", b'{"model": "m"}')
        client.close()
    assert (answer.status, answer.body, answer.headers["x-request-id"]) == (200, b'{"id": 1}', "req-9")
    [(start, headers, body)] = server.requests
    assert start == b"POST /v1/chat/completions HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert (headers["content-type"], headers["authorization"], headers["content-length"]) == (
        "application/json",
        "Bearer k",
        "14",
    )
    assert body == b'{"model": "m"}'


async def test_connections_are_kept_alive_and_reused():
    async with ScriptedServer(*[ok(b'{"n": %d}' % i) for i in range(13)]) as server:
        client = pool(server)
        for i in range(3):
            assert (await client.post("/x", b"{}")).body == b'{"n": %d}' % i
        assert server.connections == 1, "one connection carries sequential requests"
        answers = await asyncio.gather(*(client.post("/x", b"{}") for _ in range(5)))
        assert server.connections == 5, "concurrent requests each get a connection"
        await asyncio.gather(*(client.post("/x", b"{}") for _ in range(5)))
        assert server.connections == 5, "and the pool keeps them for the next ones"
        client.close()
    assert sorted(a.body for a in answers) == sorted(b'{"n": %d}' % i for i in range(3, 8))


async def test_a_chunked_answer_arriving_byte_by_byte_is_put_together():
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\n{\"a\"\r\nB\r\n: \"bcdefg\"}\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with ScriptedServer([raw[i : i + 1] for i in range(len(raw))], ok()) as server:
        client = pool(server)
        answer = await client.post("/x", b"{}")
        assert answer.body == b'{"a": "bcdefg"}'
        assert (await client.post("/x", b"{}")).status == 200
        client.close()
    assert server.connections == 1, "a complete chunked answer leaves the connection reusable"


async def test_a_body_delimited_by_the_close_is_read_to_the_end_and_not_reused():
    async with ScriptedServer((b"HTTP/1.0 200 OK\r\n\r\n{\"closed\": 1}", "close")) as server:
        client = pool(server)
        answer = await client.post("/x", b"{}")
        client.close()
    assert answer.body == b'{"closed": 1}'


async def test_connection_close_and_interim_answers():
    async with ScriptedServer(
        b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"[1]", "Connection: close\r\n"), ok(b"[2]")
    ) as server:
        client = pool(server)
        assert (await client.post("/x", b"{}")).body == b"[1]", "the 100 is skipped"
        assert (await client.post("/x", b"{}")).body == b"[2]"
        client.close()
    assert server.connections == 2, "Connection: close is honoured"


async def test_an_idle_connection_the_server_closed_is_replaced_without_a_lost_or_doubled_request():
    async with ScriptedServer(ok(b"[1]"), ok(b"[2]")) as server:
        client = pool(server)
        await client.post("/x", b'{"first": 1}')
        server.close_idle_connections()
        await asyncio.sleep(0.05)
        assert (await client.post("/x", b'{"second": 2}')).body == b"[2]"
        client.close()
    assert [body for _, _, body in server.requests] == [b'{"first": 1}', b'{"second": 2}']
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply, message",
    [
        (
            (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"cut", "close"),
            "closed in the middle of the answer's body",
        ),
        ((b"HTTP/1.1 200 OK\r\nContent-Le", "close"), "closed in the middle of the answer's headers"),
        ((b"", "close"), "closed before the answer was complete"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "does not start with an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}", "cannot read: 'br'"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n", f"longer than {MAX_HEAD} bytes"),
    ],
)
async def test_answers_that_are_not_http_fail_with_a_clear_reason(reply, message):
    async with ScriptedServer(reply) as server:
        client = pool(server)
        with pytest.raises(UpstreamFailure, match=message):
            await client.post("/x", b"{}")
        client.close()


async def test_compressed_and_empty_answers():
    body = b'{"zipped": true}'
    async with ScriptedServer(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(gzip.compress(body)), gzip.compress(body)),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s"
        % (len(zlib.compress(body)), zlib.compress(body)),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        ok(),
    ) as server:
        client = pool(server)
        assert (await client.post("/x", b"{}")).body == body
        assert (await client.post("/x", b"{}")).body == body
        empty = await client.post("/x", b"{}")
        assert (empty.status, empty.body) == (204, b"")
        assert (await client.post("/x", b"{}")).status == 200
        client.close()
    assert server.connections == 1


async def test_a_silent_server_times_out_and_an_absent_one_fails_to_connect():
    async with ScriptedServer((b"HTTP/1.1 200 OK\r\n", "hang")) as server:
        client = pool(server, timeout=0.3)
        with pytest.raises(TimeoutError):
            await client.post("/x", b"{}")
        client.close()
    closed = Http1Pool(Origin(f"http://127.0.0.1:{server.port}/v1"), {}, 5.0)
    with pytest.raises(UpstreamFailure, match=r"cannot connect to 127\.0\.0\.1"):
        await closed.post("/x", b"{}")


async def test_a_reused_connection_that_falls_silent_times_out_and_the_next_request_gets_a_new_one():
    async with ScriptedServer(ok(), (b"HTTP/1.1 200 OK\r\n", "hang"), ok(b'{"third": 1}')) as server:
        client = pool(server, timeout=0.3)
        assert (await client.post("/x", b"{}")).status == 200
        with pytest.raises(TimeoutError):
            await client.post("/x", b"{}")
        third = await client.post("/x", b"{}")
        client.close()
    assert third.body == b'{"third": 1}'
    assert server.connections == 2  # the silent connection was closed, not reused


def test_a_pool_used_again_under_a_new_event_loop_still_times_out():
    async def silent_exchange(client: Http1Pool | None) -> Http1Pool:
        async with ScriptedServer((b"HTTP/1.1 200 OK\r\n", "hang")) as server:
            client = client or pool(server, timeout=0.3)
            client.origin = Origin(f"http://127.0.0.1:{server.port}/v1")
            sending = asyncio.create_task(client.post("/x", b"{}"))
            done, _ = await asyncio.wait({sending}, timeout=10)
            sending.cancel()
            assert done, "the request was never timed out"
            with pytest.raises(TimeoutError):
                sending.result()
            return client

    async def cut_short(client: Http1Pool) -> None:
        async with ScriptedServer((b"HTTP/1.1 200 OK\r\n", "hang")) as server:
            client.origin = Origin(f"http://127.0.0.1:{server.port}/v1")
            sending = asyncio.create_task(client.post("/x", b"{}"))
            await asyncio.sleep(0.05)
            sending.cancel()  # the loop ends with the sweeper's timer still on it

    client = asyncio.run(silent_exchange(None))
    asyncio.run(cut_short(client))
    asyncio.run(silent_exchange(client))


async def test_get_reads_a_listing_from_the_origin_path():
    async with ScriptedServer(ok(b'{"data": []}')) as server:
        client = pool(server, path="/api/v1")
        answer = await client.get("/models", timeout=5)
        client.close()
    assert answer.body == b'{"data": []}'
    assert server.requests[0][0] == b"GET /api/v1/models HTTP/1.1"


@pytest.mark.parametrize(
    "url, authority, path",
    [
        ("http://h/v1", "h", "/v1"),
        ("http://h:80/v1/", "h", "/v1"),
        ("https://h:8443", "h:8443", ""),
        ("http://[::1]:8000/v1", "[::1]:8000", "/v1"),
    ],
)
def test_origin_host_header_and_path(url, authority, path):
    origin = Origin(url)
    assert (origin.authority, origin.path) == (authority, path)
