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
from collections.abc import Callable
from pathlib import Path

import orjson

from batchgate.domain.file_check import FileCheck, FileSummary, LineLimits
from batchgate.domain.lines import LineError
from batchgate.domain.splitting import LineSplitter
from batchgate.scratch_ids import UniqueIds

READ_BYTES = 1 << 18  # per read from stdin: fewer, bigger chunks cost less time, more memory
IDS_AT_ONCE = 10_000  # custom_ids inserted into the on-disk set at once


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
    seen = UniqueIds(scratch)
    try:
        pending: list[str] = []
        while chunk is not None:
            if not check.stopped:  # a stopped check's remaining chunks are only taken
                pending += check.feed(splitter.feed(chunk)).custom_ids
                if len(pending) >= IDS_AT_ONCE or check.stopped:
                    _add_unique(seen, pending, check)
                    pending = []
            chunk = take()
        if not check.stopped:
            pending += check.feed(splitter.end()).custom_ids
            _add_unique(seen, pending, check)
            check.end()
        return check.summary() or check.error
    finally:
        seen.close()


def _add_unique(seen: UniqueIds, custom_ids: list[str], check: FileCheck) -> None:
    """Add the ids to the set; the check learns it if one of them was there already."""
    if not seen.add(custom_ids):
        check.repeats_somewhere()


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
