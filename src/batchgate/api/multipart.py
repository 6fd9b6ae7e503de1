"""multipart/form-data read as it streams in: the parts of an upload, each one's bytes as they arrive.

An upload's file part is most of a gigabyte, so the cost is in finding where it ends. aiohttp's own
reader copies each chunk twice (into a window with the one before) and looks for the boundary with a
general substring search, which took more of the upload's CPU than anything but hashing. Here the
search is for the carriage return every delimiter starts with (memchr, which a JSONL file written
with plain newlines never matches) and a chunk with no delimiter in it is handed on as it came.

Headers are read as aiohttp reads them: bytes that are not UTF-8 become lone surrogates, and
Content-Disposition goes through aiohttp's own parser, so names and filenames come out the same.
Whatever the bytes, a malformed body raises InvalidRequest (code invalid_multipart) saying what is wrong.
"""

from __future__ import annotations

from email.message import Message
from typing import Protocol

from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from batchgate.errors import InvalidRequest

READ_BYTES = 1024 * 1024  # asked of the stream at once: what is waiting comes, up to this much
MAX_HEADER_LINE = 8 * 1024  # a part's header line, or a line of the preamble
MAX_HEADERS = 64  # header lines in one part
MAX_BOUNDARY = 70  # RFC 2046
MAX_PARTS = 32  # a form for /files has two to four; a body of thousands of tiny parts is refused
MAX_PREAMBLE = 64 * 1024  # bytes before the first delimiter (RFC 2046 allows some; clients send none)
CR_PROBES = 16  # carriage returns looked at one by one in a chunk before one search for the whole delimiter


class BodyStream(Protocol):
    """A request body as aiohttp's StreamReader gives it: read(n) is what is waiting, up to n; b"" at the end."""

    async def read(self, n: int = -1) -> bytes: ...


def malformed(reason: str) -> InvalidRequest:
    return InvalidRequest(f"The multipart body is malformed: {reason}.", code="invalid_multipart")


def boundary_of(content_type: str) -> bytes:
    """The boundary named by a multipart Content-Type header."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise malformed("the Content-Type header names no boundary")
    if len(boundary) > MAX_BOUNDARY or not boundary.isascii():
        raise malformed(f"the boundary must be 1 to {MAX_BOUNDARY} ASCII characters")
    return boundary.encode()


def find_delimiter(data: bytes, delimiter: bytes, start: int = 0) -> tuple[int, bool]:
    """Where `delimiter` starts in `data` from `start`, and whether it is whole there; (-1, False) if it
    cannot start in it.

    Not whole: `data` ends with the delimiter's first bytes, and the next bytes decide. Every delimiter
    starts with a carriage return, and find() looks for a single byte with memchr: a file of plain
    newlines has none. Past CR_PROBES of them (CRLF lines, or a body of carriage returns), one
    substring search for the whole delimiter takes the rest, so a chunk costs a bounded number of steps.
    """
    at = data.find(b"\r", start)
    for _ in range(CR_PROBES):
        if at < 0:
            return -1, False
        if data.startswith(delimiter, at):
            return at, True
        if len(data) - at < len(delimiter) and delimiter.startswith(data[at:]):
            return at, False
        at = data.find(b"\r", at + 1)
    if at < 0:
        return -1, False
    if (whole := data.find(delimiter, at)) >= 0:
        return whole, True
    at = data.find(b"\r", max(at, len(data) - len(delimiter) + 1))  # a cut one can only start this late
    while at >= 0:
        if delimiter.startswith(data[at:]):
            return at, False
        at = data.find(b"\r", at + 1)
    return -1, False


class FormPart:
    """One part: its name, filename and content type, and its bytes through read_chunk()."""

    def __init__(self, form: FormReader, headers: dict[str, str]):
        self._form = form
        self.headers = headers
        self.content_type = headers.get("content-type", "text/plain")
        _, params = parse_content_disposition(headers.get("content-disposition"))
        self.name = content_disposition_filename(params, "name")
        self.filename = content_disposition_filename(params, "filename")
        self.done = False
        self.started = False  # whether any of its bytes were looked at

    async def read_chunk(self) -> bytes:
        """The part's next bytes, as many as have arrived; b"" once the part is over."""
        while not self.done:
            chunk = await self._form.take_body(self)
            if chunk:
                return chunk
        return b""

    async def read_at_most(self, limit: int) -> bytes | None:
        """The whole part, or None if it is longer than `limit` bytes (the rest is left unread)."""
        pieces, size = [], 0
        while chunk := await self.read_chunk():
            pieces.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
        return b"".join(pieces)

    async def release(self) -> None:
        """Read to the part's end, unseen."""
        while await self.read_chunk():
            pass


class FormReader:
    """The parts of a multipart body, in order: next() until it answers None."""

    def __init__(self, stream: BodyStream, content_type: str):
        self._stream = stream
        self._boundary = boundary_of(content_type)
        self._delimiter = b"\r\n--" + self._boundary
        # What was read from the stream; bytes before `_at` are handed on already. Lines and chunks are
        # taken by moving `_at`, not by cutting `_held`, which would copy the rest each time.
        self._held, self._at = b"", 0
        self._part: FormPart | None = None
        self._parts = 0
        self._started = self._ended = False

    async def next(self) -> FormPart | None:
        """The next part, its headers read; None after the closing delimiter."""
        if self._part is not None:
            await self._part.release()
            self._part = None
            await self._after_delimiter()
        elif not self._started:
            await self._skip_preamble()
        self._started = True
        if self._ended:
            return None
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise malformed(f"it has more than {MAX_PARTS} parts")
        self._part = FormPart(self, await self._headers())
        return self._part

    async def take_body(self, part: FormPart) -> bytes:
        """Some of `part`'s bytes (maybe none): up to the delimiter, which marks the part done."""
        if not part.started:
            part.started = True
            if await self._delimiter_without_its_line_break():
                part.done = True
                return b""
        if self._at == len(self._held) and not await self._fill():
            raise malformed("it ends before its closing boundary")
        held, start = self._held, self._at
        at, whole = find_delimiter(held, self._delimiter, start)
        if at < 0:
            self._held, self._at = b"", 0
            return held[start:] if start else held  # the usual chunk: handed on as it came
        if whole:
            part.done = True
            self._at = at + len(self._delimiter)
            return held[start:at]
        if at > start:
            self._at = at
            return held[start:at]
        if not await self._fill():  # the start of a delimiter ends what has arrived: wait for more
            raise malformed("it ends before its closing boundary")
        return b""

    async def _delimiter_without_its_line_break(self) -> bool:
        """An empty part may have its delimiter right after the blank line that ends its headers, without
        the line break of its own (aiohttp's reader takes that too): then it is taken here."""
        bare = self._delimiter[2:]
        while len(self._held) - self._at < len(bare) and bare.startswith(self._held[self._at :]):
            if not await self._fill():
                return False
        if not self._held.startswith(bare, self._at):
            return False
        self._at += len(bare)
        return True

    async def _fill(self) -> bool:
        """Read more; what was not handed on yet is kept in front of it."""
        data = await self._stream.read(READ_BYTES)
        if not data:
            return False
        rest = self._held[self._at :] if self._at < len(self._held) else b""
        self._held, self._at = rest + data if rest else data, 0
        return True

    async def _line(self, at_end_ok: bool = False) -> bytes:
        """The next line, without its line break; b"" for a last line without one if `at_end_ok`."""
        while (end := self._held.find(b"\n", self._at, self._at + MAX_HEADER_LINE + 1)) < 0:
            if len(self._held) - self._at > MAX_HEADER_LINE:
                raise malformed(f"a header or boundary line is longer than {MAX_HEADER_LINE} bytes")
            if not await self._fill():
                if at_end_ok:
                    line, self._held, self._at = self._held[self._at :], b"", 0
                    return line
                raise malformed("it ends in the middle of a part's headers")
        line, self._at = self._held[self._at : end], end + 1
        return line.removesuffix(b"\r")

    async def _skip_preamble(self) -> None:
        """Lines before the first delimiter are the preamble: skipped (RFC 2046)."""
        dash, skipped = b"--" + self._boundary, 0
        while skipped <= MAX_PREAMBLE:
            if self._at == len(self._held) and not await self._fill():
                raise malformed(f"the boundary {self._boundary.decode()!r} never starts a line")
            line = await self._line(at_end_ok=True)
            skipped += len(line) + 1
            if (line := line.rstrip(b" \t")) == dash:
                return
            if line == dash + b"--":
                self._ended = True
                return
        raise malformed(f"more than {MAX_PREAMBLE} bytes come before the first boundary")

    async def _after_delimiter(self) -> None:
        """The rest of a delimiter's line: "--" for the last one, then only padding."""
        rest = (await self._line(at_end_ok=True)).rstrip(b" \t")
        if rest == b"--":
            self._ended = True
        elif rest:
            raise malformed(f"a boundary is followed by {rest[:20]!r} on its line")

    async def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = await self._line()
            if not line:
                return headers
            name, colon, value = line.decode("utf-8", "surrogateescape").partition(":")
            if not colon or not name or name != name.strip():
                raise malformed(f"a part's header line {line[:40]!r} is not 'Name: value'")
            headers[name.lower()] = value.strip(" \t")
        raise malformed(f"a part has more than {MAX_HEADERS} header lines")
