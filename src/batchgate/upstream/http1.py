"""A lean HTTP/1.1 client for the hot path: one request in, one whole answer out, keep-alive pooled.

A batch line is one small POST and one small JSON answer. A general client builds request and
response objects, header multidicts, trace hooks and timers for each, the largest part of a
gateway's CPU per line (docs/benchmarks.md). Here a request is one write of pre-built bytes and
an answer is parsed straight from the socket's buffer by an asyncio protocol.

A request's timeout is a deadline that one timer per pool sweeps (every SWEEP_SHARE of the timeout,
at most SWEEP_MAX_SECONDS): a timer of its own for each request cost more than the rest of its
exchange (docs/benchmarks.md), and a deadline a few percent late changes nothing a timeout is for.

It speaks what OpenAI-compatible servers answer: Content-Length, chunked or close-delimited
bodies, gzip/deflate if a server compresses unasked, 1xx interim answers, http and https.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from batchgate.errors import UpstreamFailure

MAX_HEAD = 64 * 1024  # status line and headers
IDLE_SECONDS = 50.0  # below the usual 60 s+ keep-alive of servers, so we close first
NO_BODY = frozenset({204, 304})
SWEEP_SHARE = 0.05  # a request times out within this share of its timeout after its deadline
SWEEP_MAX_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes


class Origin:
    """Where requests go: scheme, host and port of a base URL, and the path before each endpoint."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = parts.port is None or parts.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self.path = parts.path.rstrip("/")


class Http1Pool:
    """Keep-alive connections to one origin; as many as there are requests in flight."""

    def __init__(self, origin: Origin, headers: dict[str, str], timeout: float):
        self.origin = origin
        self._timeout = timeout
        self._ssl = ssl.create_default_context() if origin.tls else None
        self._fixed = "".join(
            f"{name}: {value}\r\n" for name, value in {"Host": origin.authority, **headers}.items()
        ).encode("latin-1")
        self._heads: dict[str, bytes] = {}
        self._idle: deque[_Connection] = deque()
        self._waiting: dict[_Connection, float] = {}  # connections awaiting an answer, by their deadline
        self._sweep_every = min(SWEEP_MAX_SECONDS, timeout * SWEEP_SHARE)
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweeping_in: asyncio.AbstractEventLoop | None = None  # the loop the sweeper's timer is on

    async def post(self, path: str, body: bytes) -> Answer:
        """POST `body` to `path` (after the origin's own path). Raises UpstreamFailure or asyncio.TimeoutError."""
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = b"POST " + (self.origin.path + path).encode() + b" HTTP/1.1\r\n" + self._fixed
        return await self._send(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body), self._timeout)

    async def get(self, path: str, timeout: float) -> Answer:
        return await self._send(
            b"GET " + (self.origin.path + path).encode() + b" HTTP/1.1\r\n" + self._fixed + b"\r\n", timeout
        )

    async def _send(self, request: bytes, timeout: float) -> Answer:
        """On an idle connection if one is alive, else on a new one; TimeoutError past `timeout`."""
        deadline = time.monotonic() + timeout
        while (conn := self._reuse()) is not None:
            try:
                return await self._exchange(conn, request, deadline)
            except _StaleConnection:
                continue  # the server closed it while idle, before reading a byte: not sent
        # Connecting is rare (a connection is reused for as long as it lives): it may have a timer.
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            conn = await self._connect()
        return await self._exchange(conn, request, deadline)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self) -> None:
        """End the exchanges whose deadline has passed; come back while any is out."""
        self._sweeper = None
        now = time.monotonic()
        for conn in [conn for conn, deadline in self._waiting.items() if deadline <= now]:
            conn.expire()
        if self._waiting:
            self._sweeper = asyncio.get_running_loop().call_later(self._sweep_every, self._sweep)

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Connection,
                self.origin.host,
                self.origin.port,
                ssl=self._ssl,
                server_hostname=self.origin.host if self._ssl else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamFailure(
                f"cannot connect to {self.origin.authority}: {exc.__class__.__name__}: {exc}"
            ) from None
        return conn

    async def _exchange(self, conn: _Connection, request: bytes, deadline: float) -> Answer:
        self._waiting[conn] = deadline
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeping_in is not loop:  # a timer left on a closed loop never fires
            self._sweeper, self._sweeping_in = loop.call_later(self._sweep_every, self._sweep), loop
        try:
            answer = await conn.exchange(request)
        except BaseException:
            conn.close()
            raise
        finally:
            del self._waiting[conn]
        if conn.keep_alive:
            self._idle.append(conn)
        else:
            conn.close()
        return answer


class _StaleConnection(UpstreamFailure):
    """A reused connection ended before any byte of the answer: the request may be sent again."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._used = False  # has carried an exchange before (so an early end means it went stale)
        self._idle_since = time.monotonic()
        self.keep_alive = False
        self._parser: _Parser | None = None

    def usable(self, now: float) -> bool:
        return not self._closed and now - self._idle_since < IDLE_SECONDS

    async def exchange(self, request: bytes) -> Answer:
        assert self._transport is not None  # connection_made ran before create_connection returned us
        self._waiter = asyncio.get_running_loop().create_future()
        self._parser = _Parser()
        self._buffer.clear()
        self._transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None
            self._used = True
            self._idle_since = time.monotonic()

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def expire(self) -> None:
        """The answer is overdue: the exchange ends with a TimeoutError, and the connection with it."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError("the upstream did not answer in time"))
        self.close()

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection hands a stream protocol an asyncio.Transport; the Protocol API types it as BaseTransport
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        parser = self._parser
        assert parser is not None  # exchange() set it with the waiter
        self._buffer += data
        try:
            answer = parser.feed(self._buffer, ended=False)
        except UpstreamFailure as exc:
            self._waiter.set_exception(exc)
            return
        if answer is not None:
            self.keep_alive = parser.keep_alive
            self._waiter.set_result(answer)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        waiter = self._waiter
        parser = self._parser
        if waiter is None or waiter.done():
            return
        assert parser is not None  # exchange() set it with the waiter
        if parser.started or not self._used:
            try:
                answer = parser.feed(self._buffer, ended=True)  # a close-delimited body ends here
            except UpstreamFailure as failure:
                waiter.set_exception(failure)
                return
            if answer is not None:
                self.keep_alive = False
                waiter.set_result(answer)
                return
            reason = f": {exc}" if exc else ""
            waiter.set_exception(UpstreamFailure(f"the connection closed before the answer was complete{reason}"))
        else:
            waiter.set_exception(_StaleConnection("the idle connection was closed by the server"))


class _Parser:
    """The answer to one request, parsed from a growing buffer (which it consumes as it goes)."""

    def __init__(self) -> None:
        self.started = False
        self.keep_alive = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._length: int | None = None  # None: until the connection closes
        self._chunked = False
        self._body = bytearray()
        self._in_body = False

    def feed(self, buffer: bytearray, ended: bool) -> Answer | None:
        if buffer:
            self.started = True
        while not self._in_body:
            if not self._read_head(buffer, ended):
                return None
        if self._chunked:
            done = self._read_chunks(buffer)
        elif self._length is not None:
            done = len(buffer) >= self._length
            if done:
                self._body += buffer[: self._length]
                del buffer[: self._length]
        else:
            done = ended
            if done:
                self._body += buffer
                buffer.clear()
        if not done:
            if ended:
                raise UpstreamFailure("the connection closed in the middle of the answer's body")
            return None
        return Answer(self._status, self._headers, self._decoded())

    def _read_head(self, buffer: bytearray, ended: bool) -> bool:
        end = buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD or (end < 0 and len(buffer) > MAX_HEAD):
            raise UpstreamFailure(f"the answer's headers are longer than {MAX_HEAD} bytes")
        if end < 0:
            if ended and buffer:
                raise UpstreamFailure("the connection closed in the middle of the answer's headers")
            return False
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise UpstreamFailure(f"the answer does not start with an HTTP/1.x status line: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        status = int(code)
        if 100 <= status < 200:
            return True  # an interim answer (100 Continue): the real one follows
        self._status, self._headers, self._in_body = status, headers, True
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        if status in NO_BODY:
            self._length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif (length := headers.get("content-length")) is not None:
            if not length.isdigit():
                raise UpstreamFailure(f"the answer has an invalid Content-Length: {length[:40]!r}")
            self._length = int(length)
        else:
            self.keep_alive = False  # the body ends when the server closes the connection
        return True

    def _read_chunks(self, buffer: bytearray) -> bool:
        while True:
            if self._length is None or self._length < 0:  # at a chunk's size line (-1: at the trailers)
                end = buffer.find(b"\r\n")
                if end < 0:
                    return False
                if self._length == -1:
                    del buffer[: end + 2]
                    if end == 0:
                        return True  # the blank line after the (ignored) trailers
                    continue
                size = bytes(buffer[:end]).split(b";", 1)[0].strip()
                del buffer[: end + 2]
                try:
                    self._length = int(size, 16)
                except ValueError:
                    raise UpstreamFailure(f"the answer has an invalid chunk size: {size[:40]!r}") from None
                if self._length == 0:
                    self._length = -1
                continue
            if len(buffer) < self._length + 2:
                return False
            self._body += buffer[: self._length]
            del buffer[: self._length + 2]
            self._length = None

    def _decoded(self) -> bytes:
        encoding = self._headers.get("content-encoding", "identity").lower()
        if encoding in ("identity", ""):
            return bytes(self._body)
        if encoding in ("gzip", "x-gzip", "deflate"):
            # 47 reads a gzip or zlib header; some servers send "deflate" as a bare stream (-15) instead.
            wbits = -15 if encoding == "deflate" and self._body[:1] != b"x" else 47
            try:
                return zlib.decompress(self._body, wbits=wbits)
            except zlib.error as exc:
                raise UpstreamFailure(f"the answer's {encoding} body cannot be decompressed: {exc}") from None
        raise UpstreamFailure(f"the answer uses a Content-Encoding batchgate cannot read: {encoding!r}")
