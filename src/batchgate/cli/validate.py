"""`batchgate validate FILE`: the server's own checks of a batch input file, offline, with no server.

Each problem is one `line N: code: message` on stdout, in line order; the summary (lines, requests,
models, endpoint, verdict) goes to stderr. Exit 0 when a batch would accept the file, 2 when not.
The limits are the server's settings (BATCHGATE_MAX_LINES, BATCHGATE_MAX_LINE_BYTES, …, or BATCHGATE_CONFIG).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from batchgate.blobs.lines import located_line_batches
from batchgate.cli.client import EXIT_OK, EXIT_USAGE
from batchgate.cli.endpoints import urls_named
from batchgate.cli.resources import readable
from batchgate.domain.lines import ENDPOINTS, LineError, ValidationReport
from batchgate.errors import CommandFailed
from batchgate.settings import Settings

SHOWN_PROBLEMS = 1000  # the earliest this many are listed; the summary counts them all
READ_CHUNK = 1 << 20


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a JSONL file as the server would, offline",
        description="Check FILE with the server's own validation, without a server. Problems are printed on "
        "stdout as 'line N: code: message'; the summary goes to stderr. Exit 0 when valid, 2 when not.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a JSONL file of requests")
    parser.add_argument(
        "--endpoint", metavar="E", help="the batch endpoint (default: the 'url' of the first line naming one)"
    )
    parser.set_defaults(handler=cmd_validate)


class ModelsSeen(ValidationReport):
    """A validation report that also keeps every model named and the last line read, for the summary."""

    def __init__(self, keep: int):
        super().__init__(keep)
        self.models: set[str] = set()

    def add_model(self, model: str) -> None:
        super().add_model(model)
        self.models.add(model)


@dataclass
class Verdict:
    report: ModelsSeen
    lines: int = 0
    endpoint: str = ""


def cmd_validate(args: argparse.Namespace) -> int:
    path = readable(args.file)
    endpoint = args.endpoint or _endpoint_of(path)
    if endpoint not in ENDPOINTS:
        raise CommandFailed(f"unsupported endpoint {endpoint!r}: one of {', '.join(ENDPOINTS)}", EXIT_USAGE)
    settings = Settings.load()
    verdict = asyncio.run(check_file(path, endpoint, settings))
    report = verdict.report
    for error in sorted(report.errors, key=lambda e: e.line):
        print(f"line {error.line}: {error.code}: {error.message}")
    _summarise(path, verdict)
    return EXIT_OK if report.ok else EXIT_USAGE


def _endpoint_of(path: Path) -> str:
    urls = urls_named(path, enough=1)
    if not urls:
        raise CommandFailed(f"no line of {path} names a 'url', so its endpoint is unknown: pass --endpoint", EXIT_USAGE)
    return urls[0]


def _summarise(path: Path, verdict: Verdict) -> None:
    report = verdict.report
    models = ", ".join(sorted(report.models)) or "none"
    shown = len(report.errors)
    more = f" ({report.error_count - shown} more not listed)" if report.error_count > shown else ""
    state = "valid" if report.ok else f"invalid: {report.error_count} problem(s){more}"
    print(
        f"{path}: {verdict.lines} lines, {report.request_count} requests, models: {models}, "
        f"endpoint: {verdict.endpoint}: {state}",
        file=sys.stderr,
    )


async def check_file(path: Path, endpoint: str, settings: Settings) -> Verdict:
    """The adapter to the validating stage's checks (worker/validate.py): the one place that knows them.

    The same per-line pass and on-disk duplicate ledger as a batch's validation, over a local file.
    """
    # Imported here: the worker's modules bring the upstream client, which other commands need not load.
    from batchgate.worker.context import ValidateSettings
    from batchgate.worker.ledger import CustomIdLedger
    from batchgate.worker.validate import LEDGER_CHUNK, _check_batch

    verdict = Verdict(ModelsSeen(keep=SHOWN_PROBLEMS), endpoint=endpoint)
    report = verdict.report
    with tempfile.TemporaryDirectory(prefix="batchgate-validate-") as scratch:
        ledger = CustomIdLedger(Path(scratch))
        try:
            pending: list[tuple[str, int]] = []
            async for located in located_line_batches(_chunks(path), settings.max_line_bytes):
                verdict.lines = located[-1][0]
                if not _check_batch(located, endpoint, ValidateSettings.of(settings), report, None, pending):
                    break
                if len(pending) >= LEDGER_CHUNK:
                    await ledger.add(pending)
                    pending = []
            await ledger.add(pending)
            for custom_id, first, line in await ledger.duplicates(SHOWN_PROBLEMS):
                message = f"Line {line}: custom_id {custom_id!r} was already used on line {first}."
                report.add_error(LineError(line, "duplicate_custom_id", message, "custom_id"))
        finally:
            await ledger.settle()
            ledger.close()
    if report.request_count == 0 and report.ok:
        report.add_error(LineError(1, "empty_file", "The input file has no requests."))
    return verdict


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            yield chunk
