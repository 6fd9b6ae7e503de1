"""`batchgate run FILE` (upload, create, follow, download) and `batchgate watch BATCH_ID` (follow, download).

While a batch runs, Ctrl-C asks whether to cancel it or leave it running. Exit codes (DESIGN.md §5):
0 every line succeeded; 1 the batch completed with some failed lines; 2 it ended failed, expired or
cancelled (or bad usage); 3 the server could not be reached or answered 5xx; 130 left running after Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from batchgate.cli.client import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ApiClient,
    Connection,
    add_connection_flags,
)
from batchgate.cli.endpoints import infer_endpoint
from batchgate.cli.progress import Counts, clock, view_for
from batchgate.cli.resources import add_batch_options, batch_request, readable
from batchgate.errors import CommandFailed

POLL_SECONDS = 0.5
PATIENCE_SECONDS = 60.0  # how long a server that stopped answering is retried while following a batch
RETRY_SECONDS = 1.0
EXIT_LEFT_RUNNING = 130  # the shell's code for a command stopped by Ctrl-C
TERMINAL = ("completed", "failed", "expired", "cancelled")
OUTPUT_SUFFIX, ERRORS_SUFFIX = ".output.jsonl", ".errors.jsonl"
EXIT_CODES = (
    "exit codes: 0 every line succeeded; 1 some lines failed; 2 the batch ended failed, expired or cancelled, "
    "or bad usage; 3 the server could not be reached or failed (5xx); 130 left running after Ctrl-C"
)
ANSWERS = {"c": True, "cancel": True, "l": False, "leave": False, "": False}  # True: cancel

# The exit code of a batch that ended, by its status.
EXIT_BY_STATUS: dict[str, Callable[[Counts], int]] = {
    "completed": lambda counts: EXIT_REFUSED if counts.failed else EXIT_OK,
    "failed": lambda counts: EXIT_USAGE,
    "expired": lambda counts: EXIT_USAGE,
    "cancelled": lambda counts: EXIT_USAGE,
}


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="upload a JSONL file, run it as a batch with a live progress bar, download the results",
        description="Upload FILE, create a batch over it, follow it with a progress bar and download its output "
        "and error files. Ctrl-C asks whether to cancel the batch or leave it running.",
        epilog=EXIT_CODES,
    )
    run.add_argument("file", type=Path, metavar="FILE", help="a JSONL file of requests")
    run.add_argument("--endpoint", metavar="E", help="the batch endpoint (default: the 'url' every line names)")
    _add_result_flags(run, "FILE with %s in place of its suffix")
    add_batch_options(run)
    add_connection_flags(run)
    run.set_defaults(handler=cmd_run)

    watch = commands.add_parser(
        "watch",
        help="follow a batch with the progress bar and download its results",
        description="Reattach to a batch: follow it with the progress bar, then download its output and error files.",
        epilog=EXIT_CODES,
    )
    watch.add_argument("batch_id", metavar="BATCH_ID")
    _add_result_flags(watch, "BATCH_ID%s in the current folder")
    add_connection_flags(watch)
    watch.set_defaults(handler=cmd_watch)


def _add_result_flags(parser: argparse.ArgumentParser, default: str) -> None:
    """-o and --errors; `default` says where they go without them, given a suffix."""
    parser.add_argument(
        "-o",
        "--output",
        dest="out",
        type=Path,
        metavar="OUT",
        help=f"the output file (default: {default % OUTPUT_SUFFIX})",
    )
    parser.add_argument(
        "--errors",
        type=Path,
        metavar="ERR",
        help=f"the error file, written only when some lines failed (default: {default % ERRORS_SUFFIX})",
    )


@dataclass(frozen=True)
class Targets:
    """Where a batch's output and error files go."""

    output: Path
    errors: Path

    @classmethod
    def of(cls, stem: Path, output: Path | None, errors: Path | None) -> Targets:
        """`stem` with the default suffixes (in.jsonl → in.output.jsonl) for what the flags leave out."""
        return cls(output or stem.with_suffix(OUTPUT_SUFFIX), errors or stem.with_suffix(ERRORS_SUFFIX))


def cmd_run(args: argparse.Namespace) -> int:
    path = readable(args.file)
    endpoint = args.endpoint or infer_endpoint(path)
    targets = Targets.of(path, args.out, args.errors)
    with ApiClient(Connection.of(args)) as api:
        file = api.upload(path, "batch")
        batch = create_or_clean_up(api, file["id"], batch_request(args, file["id"], endpoint))
        with interrupts() as interrupted:  # from here on, Ctrl-C asks what to do with the batch
            say(f"batch {batch['id']} created over {file['id']} ({endpoint})")
            ended = follow(api, batch, interrupted)
        return finish(api, ended, targets) if ended else EXIT_LEFT_RUNNING


def cmd_watch(args: argparse.Namespace) -> int:
    targets = Targets.of(Path(args.batch_id), args.out, args.errors)
    with ApiClient(Connection.of(args)) as api:
        batch = api.call("GET", f"/batches/{args.batch_id}")
        with interrupts() as interrupted:
            say(f"batch {batch['id']} ({batch.get('endpoint')}), created {_age(batch.get('created_at'))} ago")
            ended = follow(api, batch, interrupted)
        return finish(api, ended, targets) if ended else EXIT_LEFT_RUNNING


def create_or_clean_up(api: ApiClient, file_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Create the batch; if the API refuses, the file uploaded for it is deleted rather than left behind."""
    try:
        return dict(api.call("POST", "/batches", json=request))
    except CommandFailed:
        with suppress(CommandFailed):
            api.call("DELETE", f"/files/{file_id}")
        raise


def follow(api: ApiClient, batch: dict[str, Any], interrupted: threading.Event) -> dict[str, Any] | None:
    """Show the batch until it ends, asking what to do when `interrupted`; the ended batch, or None if left running."""
    batch_id = batch["id"]
    cancelling = False
    view = view_for(batch_id)
    view.start()
    try:
        while True:
            view.show(Counts.of(batch))
            if batch["status"] in TERMINAL:
                return batch
            if interrupted.wait(POLL_SECONDS):
                interrupted.clear()
                view.stop()
                if cancelling or not ask_to_cancel(batch_id):
                    say(f"batch {batch_id} keeps running; follow it again with: batchgate watch {batch_id}")
                    return None
                cancelling = True
                cancel(api, batch_id)
                view.start()
            batch = poll(api, batch, interrupted)
    finally:
        view.stop()


def poll(api: ApiClient, batch: dict[str, Any], interrupted: threading.Event) -> dict[str, Any]:
    """The batch's latest state. An unreachable or failing server is retried for a while (a restart is
    waited out); a Ctrl-C meanwhile returns the last state seen, for the caller to ask what to do."""
    batch_id, deadline = batch["id"], None
    while True:
        try:
            return dict(api.call("GET", f"/batches/{batch_id}"))
        except CommandFailed as failure:
            if failure.exit_code != EXIT_UNREACHABLE:
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + PATIENCE_SECONDS
                say(f"{failure.message}; trying again for {PATIENCE_SECONDS:.0f} s")
            elif now >= deadline:
                hint = f"batch {batch_id} may still be running: batchgate watch {batch_id}"
                raise CommandFailed(f"{failure.message}; {hint}", EXIT_UNREACHABLE) from None
            if interrupted.wait(RETRY_SECONDS):
                return batch


@contextmanager
def interrupts() -> Iterator[threading.Event]:
    """Ctrl-C sets the event instead of raising, so a poll is never cut in half and the user is asked."""
    event = threading.Event()

    def note(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def ask_to_cancel(batch_id: str) -> bool:
    """Ask on stderr, read the answer from stdin; no answer (end of input, another Ctrl-C) leaves it running."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for _ in range(3):
            sys.stderr.write(f"\nCancel batch {batch_id} or leave it running? [c]ancel / [l]eave (default leave): ")
            sys.stderr.flush()
            answer = sys.stdin.readline()
            if not answer:
                return False
            choice = ANSWERS.get(answer.strip().lower())
            if choice is not None:
                return choice
        return False
    except KeyboardInterrupt:
        return False
    finally:
        signal.signal(signal.SIGINT, previous)


def cancel(api: ApiClient, batch_id: str) -> None:
    try:
        api.call("POST", f"/batches/{batch_id}/cancel")
    except CommandFailed as refused:
        if refused.exit_code != EXIT_REFUSED:
            raise
        say(f"could not cancel: {refused.message}")  # it ended meanwhile: its results are downloaded as usual
        return
    say(f"cancelling batch {batch_id}; waiting for it to stop")


def finish(api: ApiClient, batch: dict[str, Any], targets: Targets) -> int:
    """Download what the ended batch wrote, say how it went, and return its exit code."""
    counts = Counts.of(batch)
    if batch.get("output_file_id"):
        api.download_to(batch["output_file_id"], targets.output)
        say(f"output: {targets.output} ({counts.done - counts.failed} lines)")
    elif batch["status"] != "failed":  # nothing succeeded: the output file is there, empty
        targets.output.write_bytes(b"")
        say(f"output: {targets.output} (0 lines)")
    if batch.get("error_file_id"):
        api.download_to(batch["error_file_id"], targets.errors)
        say(f"errors: {targets.errors} ({counts.failed} lines)")
    for error in (batch.get("errors") or {}).get("data") or []:
        say(f"line {error.get('line')}: {error.get('code')}: {error.get('message')}")
    ok = counts.done - counts.failed
    say(f"batch {batch['id']} {counts.status}: {ok} ok, {counts.failed} failed of {counts.total}")
    return EXIT_BY_STATUS[counts.status](counts)


def _age(created_at: int | None) -> str:
    return "?" if created_at is None else clock(max(0.0, time.time() - created_at))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
