"""api/multipart.py: the parts of a multipart/form-data body, however its bytes are cut as they arrive."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from batchgate.api.multipart import (
    CR_PROBES,
    MAX_HEADER_LINE,
    MAX_HEADERS,
    MAX_PARTS,
    MAX_PREAMBLE,
    FormReader,
    find_delimiter,
)
from batchgate.errors import InvalidRequest

BOUNDARY = "bgtestboundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


class Arriving:
    """A body stream that hands over its bytes in the given pieces, one per read, as a network would."""

    def __init__(self, body: bytes, cuts: list[int] | None = None):
        points = sorted({0, len(body), *(c for c in cuts or [] if 0 < c < len(body))})
        self._pieces = [body[a:b] for a, b in pairwise(points)]

    async def read(self, n: int = -1) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.pop(0)
        if 0 <= n < len(piece):
            piece, rest = piece[:n], piece[n:]
            self._pieces.insert(0, rest)
        return piece


def encode(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY) -> bytes:
    out = bytearray()
    for name, filename, content in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"".encode()
        if filename is not None:
            out += f'; filename="{filename}"'.encode()
        out += b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


async def read_form(stream, content_type: str = CONTENT_TYPE) -> list[tuple[str | None, str | None, bytes]]:
    reader, parts = FormReader(stream, content_type), []
    while (part := await reader.next()) is not None:
        pieces = []
        while chunk := await part.read_chunk():
            pieces.append(chunk)
        parts.append((part.name, part.filename, b"".join(pieces)))
    return parts


# Contents that come close to a delimiter: line breaks, dashes and the boundary's own letters.
tricky = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b"--", b"\r\n--", b"\r\n--bgtest", BOUNDARY.encode(), b"x", b"{}"]),
    max_size=12,
).map(b"".join)
names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.tuples(names, st.none() | names, tricky), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
async def test_parts_come_out_as_they_went_in_however_the_body_is_cut(parts, cuts):
    assume(all(BOUNDARY.encode() not in content for _, _, content in parts))  # senders pick a boundary to ensure it
    body = encode(parts)
    assert await read_form(Arriving(body, cuts)) == [(n, f, c) for n, f, c in parts]


def first_delimiter(data: bytes, delimiter: bytes) -> tuple[int, bool]:
    """The reference: the first place the delimiter starts, whole or cut off by the end of `data`."""
    for at in range(len(data)):
        if data.startswith(delimiter, at):
            return at, True
        if delimiter.startswith(data[at:]):
            return at, False
    return -1, False


# Long enough to hold more carriage returns than find_delimiter looks at one by one.
long_tricky = st.lists(tricky, max_size=8).map(b"".join)


@given(data=long_tricky, delimiter_at=st.integers(0, 40), then=long_tricky, start=st.integers(0, 30))
def test_the_delimiter_is_found_where_it_starts_whole_or_cut(data, delimiter_at, then, start):
    delimiter = b"\r\n--" + BOUNDARY.encode()
    for body in (data + delimiter[:delimiter_at], data + delimiter + then):
        start = min(start, len(body))
        found = first_delimiter(body[start:], delimiter)
        expected = (found[0] + start, found[1]) if found[0] >= 0 else found
        assert find_delimiter(body, delimiter, start) == expected


def test_a_chunk_of_crlf_lines_is_searched_past_its_first_carriage_returns():
    delimiter = b"\r\n--" + BOUNDARY.encode()
    lines = b"{}\r\n" * (CR_PROBES * 4)
    assert find_delimiter(lines + delimiter + b"--", delimiter) == (len(lines), True)
    for cut in (1, 9, len(delimiter) - 1):
        assert find_delimiter(lines + delimiter[:cut], delimiter) == (len(lines), False)
    assert find_delimiter(lines + b"\r\n--bgtestXX", delimiter) == (-1, False)
    assert find_delimiter(b"\r" * 1000, delimiter) == (999, False)


async def test_a_preamble_is_skipped_and_an_epilogue_is_never_read():
    body = b"this is a preamble\r\n\r\n" + encode([("purpose", None, b"batch")]) + b"epilogue, then junk \xff"
    assert await read_form(Arriving(body)) == [("purpose", None, b"batch")]


async def test_a_long_preamble_of_short_lines_arrives_in_one_read_and_is_skipped():
    """Lines are taken by moving an offset: 65,000 of them in one read are not each a copy of the rest."""
    body = b"\n" * (MAX_PREAMBLE - 100) + encode([("purpose", None, b"batch")])
    assert await read_form(Arriving(body)) == [("purpose", None, b"batch")]


async def test_a_preamble_longer_than_any_client_sends_is_refused():
    body = b"x" * 100 + b"\n"
    with pytest.raises(InvalidRequest, match="before the first boundary"):
        await read_form(Arriving(body * (MAX_PREAMBLE // len(body) + 2) + encode([("a", None, b"1")])))


async def test_a_form_of_more_parts_than_an_upload_has_is_refused():
    body = encode([(f"f{i}", None, b"x") for i in range(MAX_PARTS)])
    assert len(await read_form(Arriving(body))) == MAX_PARTS
    with pytest.raises(InvalidRequest, match=f"more than {MAX_PARTS} parts"):
        await read_form(Arriving(encode([(f"f{i}", None, b"x") for i in range(MAX_PARTS + 1)])))


async def test_an_empty_part_may_have_its_delimiter_right_after_its_headers():
    body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n\r\n--{BOUNDARY}--'.encode()
    assert await read_form(Arriving(body, list(range(len(body))))) == [("a", None, b"")]


async def test_the_closing_delimiter_may_end_the_body_without_a_line_break_and_lines_may_carry_padding():
    body = f'--{BOUNDARY}  \r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue\r\n--{BOUNDARY}--'.encode()
    assert await read_form(Arriving(body)) == [("a", None, b"value")]


async def test_filenames_keep_bytes_that_are_not_utf8_as_aiohttp_does():
    body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
    body += b'in\xff.jsonl"\r\n\r\n{}\r\n--' + BOUNDARY.encode() + b"--\r\n"
    [(name, filename, content)] = await read_form(Arriving(body))
    assert (name, filename, content) == ("file", "in\udcff.jsonl", b"{}")


async def test_a_part_longer_than_asked_is_refused_by_read_at_most():
    body = encode([("purpose", None, b"x" * 100)])
    reader = FormReader(Arriving(body, [10, 50, 90]), CONTENT_TYPE)
    part = await reader.next()
    assert part is not None and await part.read_at_most(99) is None
    assert await reader.next() is None, "the rest of the part is skipped to reach the next"


def malformed_bodies() -> dict[str, tuple[bytes, str]]:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n'.encode()
    return {
        "no boundary parameter": (encode([("a", None, b"1")]), "multipart/form-data"),
        "a boundary over 70 characters": (encode([("a", None, b"1")]), "multipart/form-data; boundary=" + "b" * 71),
        "no delimiter at all": (b"just some bytes\r\n", CONTENT_TYPE),
        "an empty body": (b"", CONTENT_TYPE),
        "cut in the headers": (head, CONTENT_TYPE),
        "cut in the content": (head + b"\r\nsome content, then nothing", CONTENT_TYPE),
        "cut in a delimiter": (head + b"\r\ncontent\r\n--bgtest", CONTENT_TYPE),
        "a header without a colon": (f"--{BOUNDARY}\r\nnot a header\r\n\r\nx\r\n--{BOUNDARY}--".encode(), CONTENT_TYPE),
        "too many headers": (f"--{BOUNDARY}\r\n".encode() + b"X-A: 1\r\n" * (MAX_HEADERS + 1), CONTENT_TYPE),
        "a header line too long": (f"--{BOUNDARY}\r\nX-A: ".encode() + b"a" * MAX_HEADER_LINE, CONTENT_TYPE),
        "junk after a delimiter": (head + f"\r\nx\r\n--{BOUNDARY}junk\r\n".encode(), CONTENT_TYPE),
    }


@pytest.mark.parametrize("case", list(malformed_bodies()))
async def test_a_malformed_body_is_a_400_that_says_what_is_wrong(case):
    body, content_type = malformed_bodies()[case]
    with pytest.raises(InvalidRequest) as caught:
        await read_form(Arriving(body, [7, 30]), content_type)
    assert caught.value.status == 400 and caught.value.code == "invalid_multipart"
    assert str(caught.value).startswith("The multipart body is malformed: ")
