"""The upload check's own process: `python -m batchgate.api.upload_checker LIMITS SCRATCH` (api/upload_check.py).

The file's bytes arrive on stdin until it closes; one JSON answer leaves on stdout: {"summary": ...}
for a clean file, {"summary": null} for one its batch must validate itself (or an empty one),
{"failure": "..."} when the check broke. It imports only what checking needs (no asyncio, no aiohttp), so it starts
in a few tens of milliseconds and holds a few MB beside the server, and only while an upload lasts.
"""

from __future__ import annotations

import base64
import gc
import os
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

from batchgate.domain.file_check import FileCheck, FileSummary, LineLimits
from batchgate.domain.lines import LineError
from batchgate.domain.splitting import LineSplitter
from batchgate.scratch_ids import UniqueIds

READ_BYTES = 1 << 18  # per read from stdin: a chunk and its lines stay in the core's cache (1 MiB was slower)
IDS_AT_ONCE = 10_000  # custom_ids inserted into the on-disk set at once
IDS_IN_FLIGHT = 2  # groups of them waiting for the inserting thread


def check_chunks(take: Callable[[], bytes | None], limits: LineLimits, scratch: Path) -> FileSummary | LineError | None:
    """Check the chunks `take` gives until None: the summary of a clean file, else the file's first error,
    or None when a custom_id repeats (the batch's own validation names the lines).

    The first error is the earliest line the validating stage would report too: after a line error the
    ids before it still go through the repeat check, which may find an earlier repeat.
    """
    check, splitter = FileCheck(limits), LineSplitter(limits.max_line_bytes)
    if (chunk := take()) is None:  # a spare checker waits here, before it makes a scratch file
        check.end()
        return check.error
    seen = RepeatCheck(UniqueIds(scratch))
    try:
        pending: list[str] = []
        while chunk is not None:
            if not check.stopped:  # a stopped check's remaining chunks are only taken
                pending += check.feed_block(splitter.feed_block(chunk)).custom_ids
                if len(pending) >= IDS_AT_ONCE or check.stopped:
                    seen.add(pending)
                    pending = []
                _note_repeat(seen.repeated(), check)
            chunk = take()
        if not check.stopped:
            pending += check.feed(splitter.end()).custom_ids
            check.end()
        seen.add(pending)
        _note_repeat(seen.finish(), check)
        return check.summary() or check.error
    finally:
        seen.close()


def _note_repeat(repeated: bool, check: FileCheck) -> None:
    """Tell the check of a repeat, once: it comes before any line error the check kept, which it drops."""
    if repeated and (check.error is not None or not check.stopped):
        check.repeats_somewhere()


class RepeatCheck:
    """Adds custom_ids to the on-disk set on a thread of its own, beside the line checks.

    Groups of ids that count up, as most files' do, are only counted, here: no thread, no insert
    (UniqueIds.counted). SQLite runs without the GIL, so its B-tree inserts (a good part of the check)
    overlap the parsing of the next lines. The ids go in the order they were added; at most
    IDS_IN_FLIGHT groups wait, so memory stays flat. What a repeat changes is only known a little
    later: the check may go on a few chunks past it, which changes no verdict (a repeat makes the
    file one to validate again).
    """

    def __init__(self, ids: UniqueIds):
        self._ids = ids
        self._inserts = ThreadPoolExecutor(1, thread_name_prefix="custom-ids")
        self._in_flight: deque[Future[bool]] = deque()
        self._repeated = False

    def add(self, custom_ids: list[str]) -> None:
        if self._repeated or not custom_ids:
            return
        if (counted := self._ids.counted(custom_ids)) is not None:  # the ids so far count up: no insert
            self._repeated = not counted
            return
        while len(self._in_flight) >= IDS_IN_FLIGHT:
            self._settle(self._in_flight.popleft())
        self._in_flight.append(self._inserts.submit(self._ids.add, custom_ids))

    def repeated(self) -> bool:
        """Whether a group inserted so far held a repeat (without waiting for those still going in)."""
        while self._in_flight and self._in_flight[0].done():
            self._settle(self._in_flight.popleft())
        return self._repeated

    def finish(self) -> bool:
        """Wait for every group: whether any custom_id repeats."""
        while self._in_flight:
            self._settle(self._in_flight.popleft())
        return self._repeated

    def close(self) -> None:
        self._inserts.shutdown(wait=True, cancel_futures=True)
        self._ids.close()

    def _settle(self, insert: Future[bool]) -> None:
        if not insert.result():
            self._repeated = True


def arguments(limits: LineLimits, scratch: Path) -> list[str]:
    """The command line for this module under `limits`, checking with scratch files in `scratch`."""
    return [
        "-m",
        __name__,
        orjson.dumps([limits.max_lines, limits.max_line_bytes, limits.shard_lines, limits.max_json_depth]).decode(),
        str(scratch),
    ]


def summary_to_wire(summary: FileSummary | None) -> dict | None:
    if summary is None:
        return None
    return {
        "endpoint": summary.endpoint,
        "requests": summary.requests,
        "last_line": summary.last_line,
        "model": summary.model,
        "grains": base64.b64encode(summary.grains).decode(),
    }


def summary_from_wire(wire: dict | None, limits: LineLimits) -> FileSummary | None:
    if wire is None:
        return None
    return FileSummary(
        wire["endpoint"], wire["requests"], wire["last_line"], wire["model"], base64.b64decode(wire["grains"]), limits
    )


def main(argv: list[str]) -> int:
    # Parsed lines make no reference cycles: the collector's passes would only cost time.
    gc.disable()
    limits, scratch = LineLimits(*orjson.loads(argv[0])), Path(argv[1])
    source = sys.stdin.buffer  # read(n) waits for n bytes or the end: chunks of a useful size
    ended = False

    def take() -> bytes | None:
        nonlocal ended
        chunk = source.read(READ_BYTES)
        ended = not chunk
        return chunk or None

    answer: dict[str, object]
    try:
        outcome = check_chunks(take, limits, scratch)
        answer = {"summary": summary_to_wire(outcome if isinstance(outcome, FileSummary) else None)}
    except Exception as exc:
        answer = {"failure": f"{exc.__class__.__name__}: {exc}"}
        while not ended:  # the server sends on to the end; take it all, so it is not held up
            take()
    try:
        sys.stdout.buffer.write(orjson.dumps(answer))
        sys.stdout.buffer.flush()
    except OSError:  # nobody reads: the server is gone, or this was a spare it no longer needs
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's own flush is quiet
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(1)
