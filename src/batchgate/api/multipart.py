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


def find_delimiter(data: bytes, delimiter: bytes) -> tuple[int, bool]:
    """Where `delimiter` starts in `data`, and whether it is whole there; (-1, False) if it cannot start in it.

    Not whole: `data` ends with the delimiter's first bytes, and the next bytes decide. Every delimiter
    starts with a carriage return, and find() looks for a single byte with memchr.
    """
    at = data.find(b"\r")
    while at >= 0:
        if data.startswith(delimiter, at):
            return at, True
        if len(data) - at < len(delimiter) and delimiter.startswith(data[at:]):
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
        self._held = b""  # read from the stream, not yet handed on
        self._part: FormPart | None = None
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
        self._part = FormPart(self, await self._headers())
        return self._part

    async def take_body(self, part: FormPart) -> bytes:
        """Some of `part`'s bytes (maybe none): up to the delimiter, which marks the part done."""
        if not part.started:
            part.started = True
            if await self._delimiter_without_its_line_break():
                part.done = True
                return b""
        if not self._held and not await self._fill():
            raise malformed("it ends before its closing boundary")
        held = self._held
        at, whole = find_delimiter(held, self._delimiter)
        if at < 0:
            self._held = b""
            return held
        if whole:
            part.done = True
            self._held = held[at + len(self._delimiter) :]
            return held[:at]
        if at > 0:
            self._held = held[at:]
            return held[:at]
        if not await self._fill():  # the start of a delimiter ends what has arrived: wait for more
            raise malformed("it ends before its closing boundary")
        return b""

    async def _delimiter_without_its_line_break(self) -> bool:
        """An empty part may have its delimiter right after the blank line that ends its headers, without
        the line break of its own (aiohttp's reader takes that too): then it is taken here."""
        bare = self._delimiter[2:]
        while len(self._held) < len(bare) and bare.startswith(self._held):
            if not await self._fill():
                return False
        if not self._held.startswith(bare):
            return False
        self._held = self._held[len(bare) :]
        return True

    async def _fill(self) -> bool:
        data = await self._stream.read(READ_BYTES)
        if not data:
            return False
        self._held = self._held + data if self._held else data
        return True

    async def _line(self, at_end_ok: bool = False) -> bytes:
        """The next line, without its line break; b"" for a last line without one if `at_end_ok`."""
        while (end := self._held.find(b"\n", 0, MAX_HEADER_LINE + 1)) < 0:
            if len(self._held) > MAX_HEADER_LINE:
                raise malformed(f"a header or boundary line is longer than {MAX_HEADER_LINE} bytes")
            if not await self._fill():
                if at_end_ok:
                    line, self._held = self._held, b""
                    return line
                raise malformed("it ends in the middle of a part's headers")
        line, self._held = self._held[:end], self._held[end + 1 :]
        return line.removesuffix(b"\r")

    async def _skip_preamble(self) -> None:
        """Lines before the first delimiter are the preamble: skipped (RFC 2046)."""
        dash = b"--" + self._boundary
        while True:
            if not self._held and not await self._fill():
                raise malformed(f"the boundary {self._boundary.decode()!r} never starts a line")
            line = (await self._line(at_end_ok=True)).rstrip(b" \t")
            if line == dash:
                return
            if line == dash + b"--":
                self._ended = True
                return

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
