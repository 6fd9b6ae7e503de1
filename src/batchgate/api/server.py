"""The HTTP server around the app: deadlines on every connection, a cap on how many, and quiet logs under attack.

    serve_api(app, settings)  ─► GatewayRunner (an AppRunner) ─► GuardedServer, the protocol factory
                                   ├─ under max_connections: GuardedProtocol (api/protocol.py)
                                   └─ beyond: Refusal, a 503 in the JSON envelope and `Connection: close`

The cap keeps file descriptors for the server's own needs (database, blobs, upstream connections), so
/healthz and the clients already connected are still served during a flood. The soft descriptor limit is
raised to the hard one at start, and the cap lowered to half of it if it is set higher. Refusals, timeouts,
malformed requests and accept() running out of descriptors are logged through ThrottledLog: a line per
interval at most, never a traceback per event.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD

from batchgate.api.protocol import Deadlines, GuardedProtocol, raw_answer
from batchgate.api.throttled_log import ThrottledLog
from batchgate.api.wire import json_response
from batchgate.errors import ConfigError, Unavailable, UnsupportedEncoding
from batchgate.settings import Settings

log = logging.getLogger("batchgate.server")

REFUSAL_LINGER_SECONDS = 1.0  # a refused client gets this long to read its 503 before the socket goes
LINGERING_REFUSALS = 64  # refusals waiting to be read at once; beyond, a new connection is closed unanswered
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"  # asyncio's message for EMFILE and kin
DECODED_CODINGS = frozenset(
    {"identity", "gzip", "deflate"} | ({"br"} if HAS_BROTLI else set()) | ({"zstd"} if HAS_ZSTD else set())
)


def raise_open_file_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(max_connections: int, open_file_limit: int) -> int:
    """Client connections allowed at once: half the descriptors stay for everything else the server opens."""
    return max(1, min(max_connections, open_file_limit // 2))


def refuse_undecodable_bodies(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]):
    """aiohttp passes a body with an unknown Content-Encoding through undecoded: refuse it instead (415)."""

    async def guarded(request: web.BaseRequest) -> web.StreamResponse:
        coding = request.headers.get("Content-Encoding", "").strip().lower()
        if coding and coding not in DECODED_CODINGS:
            error = UnsupportedEncoding(
                f"Content-Encoding {coding!r} is not supported; send the body as is or "
                f"with one of: {', '.join(sorted(DECODED_CODINGS - {'identity'}))}."
            )
            return json_response(error.to_wire(), status=error.status)
        return await handler(request)

    return guarded


class Refusal(asyncio.Protocol):
    """A connection beyond the cap: 503 at once, then closed when the client has read it (or soon anyway)."""

    def __init__(self, answer: bytes | None, on_lost: Callable[[], None]):
        self._answer = answer
        self._on_lost = on_lost
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._answer is None:
            transport.abort()
            return
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()  # the client sees the answer end, and closes
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # its request is not read: reading on only lets the client read the answer before the socket goes

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._on_lost()


class GuardedServer(web.Server):
    """aiohttp's Server, making GuardedProtocols up to `cap` connections and Refusals beyond."""

    def __init__(self, plain: web.Server, *, cap: int, deadlines: Deadlines):
        # The app runner's own server gives the handler and the protocol options (its `_kwargs`).
        super().__init__(
            refuse_undecodable_bodies(plain.request_handler),
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **plain._kwargs,
        )
        self.cap = cap
        self.open_connections = 0
        self.lingering_refusals = 0
        self._deadlines = deadlines
        self._refusals = ThrottledLog(log, logging.WARNING)
        self._notices = ThrottledLog(log, logging.INFO)
        self._busy = raw_answer(
            Unavailable(
                f"The server is at its limit of {cap} connections; retry in a moment.", code="too_many_connections"
            )
        )

    # aiohttp types the factory as making RequestHandlers, but only ever passes it to loop.create_server,
    # which takes any asyncio.Protocol: a Refusal beyond the cap is deliberate.
    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        if self.open_connections < self.cap:
            return GuardedProtocol(
                self, loop=self._loop, deadlines=self._deadlines, notices=self._notices, **self._kwargs
            )
        answered = self.lingering_refusals < LINGERING_REFUSALS
        self._refusals.note(
            f"refused a connection: {self.open_connections} are open, the limit (max_connections) is {self.cap}"
        )
        if answered:
            self.lingering_refusals += 1
            return Refusal(self._busy, self._refusal_done)
        return Refusal(None, lambda: None)

    def _refusal_done(self) -> None:
        self.lingering_refusals -= 1

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        if handler in self._connections:
            self.open_connections -= 1
        super().connection_lost(handler, exc)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose server is a GuardedServer."""

    def __init__(self, app: web.Application, *, cap: int, deadlines: Deadlines, idle_timeout: float):
        super().__init__(app, access_log=None, shutdown_timeout=5, keepalive_timeout=idle_timeout)
        self._cap = cap
        self._deadlines = deadlines

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), cap=self._cap, deadlines=self._deadlines)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs a traceback each time accept() fails for want of descriptors (up to 128 a tick): throttle it."""
    accept_errors = ThrottledLog(log, logging.ERROR)
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_OUT_OF_RESOURCES:
            exc = context.get("exception")
            accept_errors.note(
                f"cannot accept connections: {getattr(exc, 'strerror', None) or exc} "
                "(out of file descriptors or memory; lower max_connections or raise the limit)"
            )
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


async def serve_api(app: web.Application, settings: Settings) -> web.AppRunner:
    """Start serving `app` on settings.host:port; the runner returned is to be cleaned up at the end."""
    cap = connection_cap(settings.max_connections, raise_open_file_limit())
    if cap < settings.max_connections:
        log.warning("max_connections lowered to %d: half the open file limit (ulimit -n)", cap)
    quiet_accept_errors(asyncio.get_running_loop())
    deadlines = Deadlines(
        settings.header_timeout_seconds, settings.body_timeout_seconds, settings.body_min_bytes_per_second
    )
    runner = GatewayRunner(app, cap=cap, deadlines=deadlines, idle_timeout=settings.idle_timeout_seconds)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    return runner
