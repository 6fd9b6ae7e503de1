"""One client connection: aiohttp's HTTP protocol with deadlines, and its refusals in the JSON envelope.

aiohttp's RequestHandler waits as long as a client likes for a request's head and body, and answers
its own parse errors in plain text, logging a traceback for each. GuardedProtocol adds:

- a head deadline: a request's head must be whole `header_timeout_seconds` after its first byte;
- a minimum body rate: in every span of `body_timeout_seconds` a body still arriving must bring at
  least `body_min_bytes_per_second` times the span. A rate, not a deadline, so that an upload of any
  size over an honest link is never cut; spans while the server itself stopped reading (its handler
  has not consumed what came) do not count.

A missed deadline answers 408 in the JSON envelope when no answer is under way on the connection,
then closes it. The idle limit is aiohttp's keep-alive timeout: from the connection's start or the
previous answer until the next head is parsed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from batchgate.api.throttled_log import ThrottledLog
from batchgate.api.wire import json_response
from batchgate.errors import BatchgateError, HeaderTooLarge, InvalidRequest, RequestTimeout

# How long a connection answered and closed by a deadline still reads (and drops) what the client sends.
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class Deadlines:
    header_seconds: float
    body_span_seconds: float
    body_min_bytes_per_second: int

    @property
    def body_min_bytes_per_span(self) -> float:
        return self.body_min_bytes_per_second * self.body_span_seconds


def raw_answer(error: BatchgateError) -> bytes:
    """A whole HTTP/1.1 answer carrying `error` in the JSON envelope, for writing straight to a socket."""
    body = orjson.dumps(error.to_wire())
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


CARETS = re.compile(r"^\s*\^\s*$")


def parser_detail(exc: HttpProcessingError) -> str:
    """aiohttp's message on one line, without the caret line that points into the bytes."""
    lines = [line.strip() for line in str(exc.message).splitlines() if line.strip() and not CARETS.match(line)]
    return " ".join(lines)[:300]


def protocol_refusal(exc: HttpProcessingError, max_headers: int) -> InvalidRequest:
    """What to answer a request that aiohttp's parser refused, saying what to fix."""
    if isinstance(exc, LineTooLong):
        return HeaderTooLarge(
            f"The request line or a header field is longer than {exc.args[1]} bytes; "
            "shorten the URL or the header (data belongs in the body)."
        )
    detail = parser_detail(exc)
    if detail.startswith("Too many headers"):  # aiohttp raises a plain BadHttpMessage for it
        return HeaderTooLarge(f"The request has more than {max_headers} header fields; send fewer.")
    if "Transfer-Encoding" in detail:
        return InvalidRequest(
            f"Unsupported or malformed Transfer-Encoding ({detail}); send a Content-Length "
            "or 'Transfer-Encoding: chunked' alone.",
            code="invalid_transfer_encoding",
        )
    if "chunk" in detail.lower():
        return InvalidRequest(
            f"The chunked body is malformed ({detail}); each chunk is its size in hex, CRLF, "
            "the bytes, CRLF, and a 0-size chunk ends the body.",
            code="invalid_chunked_body",
        )
    return InvalidRequest(
        f"The request is not valid HTTP/1.1 ({detail}); check the request line "
        "('METHOD /path HTTP/1.1') and the headers.",
        code="invalid_http_request",
    )


class BodyClock:
    """How much of a body arrived in the current span, and the timer that judges the span."""

    __slots__ = ("bytes_in_span", "payload", "timer")

    def __init__(self, payload: StreamReader):
        self.payload = payload
        self.bytes_in_span = 0
        self.timer: asyncio.TimerHandle | None = None


class GuardedProtocol(RequestHandler):
    __slots__ = ("_body", "_deadlines", "_head_timer", "_notices")

    def __init__(self, manager: Any, *, deadlines: Deadlines, notices: ThrottledLog, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._deadlines = deadlines
        self._notices = notices
        self._head_timer: asyncio.TimerHandle | None = None
        self._body: BodyClock | None = None

    # --- watching what arrives -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        heads_before = self._request_count
        super().data_received(data)
        if not data or self._force_close or self._close or self._upgraded or self._payload_parser is not None:
            return
        if self._request_count != heads_before:
            # A head is whole (a pipelined head begun in the same bytes is left to the idle limit).
            self._stop_head_clock()
            self._stop_body_clock()
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._start_body_clock(payload)
        elif self._body is not None:
            self._body.bytes_in_span += len(data)
            if self._body.payload.is_eof():
                self._stop_body_clock()
        elif self._head_timer is None:
            self._head_timer = self._loop.call_later(self._deadlines.header_seconds, self._head_too_slow)

    def pause_reading(self) -> None:
        # The server stopped reading: the client is not to blame for the span that follows.
        super().pause_reading()
        if self._body is not None and self._body.timer is not None:
            self._body.timer.cancel()
            self._body.timer = None

    def resume_reading(self, resume_parser: bool = True) -> None:
        super().resume_reading(resume_parser)
        if self._body is not None and self._body.timer is None:
            self._start_span(self._body)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_clock()
        self._stop_body_clock()
        super().connection_lost(exc)

    # --- the clocks ------------------------------------------------------------------------------

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _start_body_clock(self, payload: StreamReader) -> None:
        self._body = BodyClock(payload)
        if not self._reading_paused:  # else the span starts when reading resumes
            self._start_span(self._body)

    def _start_span(self, body: BodyClock) -> None:
        body.bytes_in_span = 0
        body.timer = self._loop.call_later(self._deadlines.body_span_seconds, self._judge_body_span)

    def _stop_body_clock(self) -> None:
        if self._body is not None and self._body.timer is not None:
            self._body.timer.cancel()
        self._body = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        error = RequestTimeout(
            f"The request head did not arrive within {self._deadlines.header_seconds:g} s of "
            "its first byte; send the request line and headers without pausing."
        )
        if self._request_in_progress:
            # An earlier request's answer is under way: let it finish, then close instead of reading on.
            self._notices.note(f"closing a connection from {self._peer()}: {error.message}")
            self.close()
            return
        self._answer_and_close(error)

    def _judge_body_span(self) -> None:
        body = self._body
        if body is None:
            return
        body.timer = None
        if body.payload.is_eof():
            self._body = None
            return
        if body.bytes_in_span >= self._deadlines.body_min_bytes_per_span:
            self._start_span(body)
            return
        self._body = None
        error = RequestTimeout(
            f"The request body arrived slower than {self._deadlines.body_min_bytes_per_second} bytes a second "
            f"over {self._deadlines.body_span_seconds:g} s; send it without pausing."
        )
        # A handler reading the body sees a client that went away (what it is, in effect), not a closed transport.
        body.payload.set_exception(ConnectionResetError("the request body came too slowly"))
        request = self._current_request
        if request is not None and request.content is body.payload and request.writer.output_size == 0:
            self._answer_and_close(error)
        else:  # its answer has begun, or was sent already: there is no room for another
            self._notices.note(f"closing a connection from {self._peer()}: {error.message}")
            self.force_close()

    def _answer_and_close(self, error: BatchgateError) -> None:
        """Answer, then close the way that lets the client read the answer.

        Closing a socket with the client's bytes still unread makes the kernel send a reset, and a reset
        can reach the client before it has read the answer. So the answer goes out with a FIN, what the
        client still sends is read and dropped (aiohttp ignores input once the connection is closing), and
        the socket closes when the client closes its side, or after LINGER_SECONDS.
        """
        self._notices.note(f"answered {error.status} to {self._peer()} and closed: {error.message}")
        transport = self.transport
        if transport is None:
            self.force_close()
            return
        self.transport = None  # as force_close(): nothing more is written for this connection
        self.force_close()
        transport.write(raw_answer(error))
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, transport.close)

    def _peer(self) -> str:
        peer = self.peername
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    # --- aiohttp's own refusals ------------------------------------------------------------------

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        # A body the client garbled, found while aiohttp drains it after the answer: its fault, not a bug.
        exc = kwargs.get("exc_info")
        if isinstance(exc, (RequestPayloadError, HttpProcessingError)):
            detail = " ".join(str(exc).split())
            self._notices.note(f"dropped a connection from {self._peer()}: its request body is malformed ({detail})")
            return
        super().log_exception(*args, **kwargs)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> StreamResponse:
        if isinstance(exc, HttpProcessingError):
            error: BatchgateError = protocol_refusal(exc, self.max_headers)
            self._notices.note(f"refused a malformed request from {self._peer()}: {error.message}")
        else:  # a handler failed outside the error middleware: a bug, worth its traceback
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            error = BatchgateError("The server had an error while processing your request.")
            error.status = status
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was begun already: no room for the error")
        response = json_response(error.to_wire(), status=error.status)
        response.force_close()
        return response
