"""Matching a batch's input lines with the lines of its output and error files.

Both files are written in input order and name each line by its `custom_id` (unique in the
input), so walking the input once and each file once pairs every result line with its input
line, and so with its line number: the files themselves do not carry it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InputLine:
    line: int  # 1-based, blank lines counted as the worker counts them
    custom_id: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class ResultLine:
    custom_id: str
    raw: bytes


_END = ResultLine("", b"")


async def matched_lines(
    inputs: AsyncIterable[InputLine], *files: AsyncIterable[ResultLine]
) -> AsyncGenerator[tuple[InputLine, ResultLine], None]:
    """Each input line that one of `files` holds a result for, with that result, in input order.

    An input line no file holds (its file was deleted) is passed over.
    """
    readers = [aiter(file) for file in files]
    heads = [await anext(reader, _END) for reader in readers]
    async for item in inputs:
        for n, head in enumerate(heads):
            if head is not _END and head.custom_id == item.custom_id:
                yield item, head
                heads[n] = await anext(readers[n], _END)
                break


def with_line(record: bytes, line: int) -> bytes:
    """An output/error line object (JSON, `{…}`) with `"line": line` added as its last member."""
    body = record.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("a result line is a JSON object")
    separator = b"" if body[:-1].rstrip().endswith(b"{") else b","
    return b'%s%s"line":%d}' % (body[:-1], separator, line)


def retry_metadata(metadata: dict[str, str] | None, batch_id: str, max_pairs: int) -> dict[str, str]:
    """A retry's metadata: the old batch's pairs and `retry_of` = its id (replacing an older `retry_of`).

    When that would exceed `max_pairs`, the old pairs kept are the first in key order.
    """
    kept = {key: value for key, value in (metadata or {}).items() if key != "retry_of"}
    if len(kept) >= max_pairs:
        kept = dict(sorted(kept.items())[: max_pairs - 1])
    return {**kept, "retry_of": batch_id}
