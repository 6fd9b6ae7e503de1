"""`batchgate validate FILE`: the server's own checks of a batch input file, offline, with no server.

Each problem is one `line N: code: message` on stdout, in line order; the summary (lines, requests,
models, endpoint, verdict) and the plan of its good requests (domain/plan.py: estimated input tokens,
prefix groups, tokens in shared prefixes) go to stderr. `--output json` prints all of it as one JSON
object on stdout instead. Exit 0 when a batch would accept the file, 2 when not.
The limits are the server's settings (BATCHGATE_MAX_LINES, BATCHGATE_MAX_LINE_BYTES, …, or BATCHGATE_CONFIG).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batchgate.cli.client import EXIT_OK, EXIT_USAGE
from batchgate.cli.endpoints import urls_named
from batchgate.cli.output import pretty_json
from batchgate.cli.resources import readable
from batchgate.domain.file_check import FileVerdict, LineLimits, check_file
from batchgate.domain.lines import ENDPOINTS
from batchgate.domain.plan import Plan, PlanTally
from batchgate.errors import CommandFailed
from batchgate.settings import Settings

SHOWN_PROBLEMS = 1000  # the earliest this many are listed; the summary counts them all
SHOWN_MODELS = 20
READ_CHUNK = 1 << 20


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a JSONL file as the server would, offline",
        description="Check FILE with the server's own validation, without a server. Problems are printed on "
        "stdout as 'line N: code: message'; the summary and the plan (estimated input tokens, prefix groups, "
        "tokens in shared prefixes a warm cache could skip) go to stderr. Exit 0 when valid, 2 when not.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a JSONL file of requests")
    parser.add_argument(
        "--endpoint", metavar="E", help="the batch endpoint (default: the 'url' of the first line naming one)"
    )
    parser.add_argument(
        "--output",
        choices=tuple(REPORTS),
        default="text",
        help="text (default: problems on stdout, summary and plan on stderr) or json (one object on stdout)",
    )
    parser.set_defaults(handler=cmd_validate)


@dataclass
class Counted:
    """The file's chunks, counting its lines as they pass (blank ones too), for the summary."""

    path: Path
    lines: int = 0
    ends_open: bool = False

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as file:
            while chunk := file.read(READ_CHUNK):
                self.lines += chunk.count(b"\n")
                self.ends_open = not chunk.endswith(b"\n")
                yield chunk
        self.lines += self.ends_open


def cmd_validate(args: argparse.Namespace) -> int:
    path = readable(args.file)
    endpoint = args.endpoint or _endpoint_of(path)
    if endpoint not in ENDPOINTS:
        raise CommandFailed(f"unsupported endpoint {endpoint!r}: one of {', '.join(ENDPOINTS)}", EXIT_USAGE)
    chunks, tally = Counted(path), PlanTally(endpoint)
    # The one checker of every pass over an input file: the upload's, the validating stage's and this.
    verdict = check_file(
        chunks,
        endpoint,
        LineLimits.of(Settings.load()),
        keep=SHOWN_PROBLEMS,
        keep_models=SHOWN_MODELS + 1,
        on_requests=tally.add_lines,
    )
    REPORTS[args.output](Checked(path, chunks.lines, endpoint, verdict, tally.plan()))
    return EXIT_OK if verdict.ok else EXIT_USAGE


@dataclass(frozen=True)
class Checked:
    """What validate found, for either report."""

    path: Path
    lines: int
    endpoint: str
    verdict: FileVerdict
    plan: Plan


def _text(checked: Checked) -> None:
    for error in checked.verdict.errors:
        print(f"line {error.line}: {error.code}: {error.message}")
    _summarise(checked.path, checked.lines, checked.endpoint, checked.verdict)
    if checked.plan.lines:
        of_good = "" if checked.verdict.ok else " (of the good lines)"
        print(checked.plan.describe() + of_good, file=sys.stderr)


def _json(checked: Checked) -> None:
    verdict = checked.verdict
    print(
        pretty_json(
            {
                "file": str(checked.path),
                "lines": checked.lines,
                "requests": verdict.requests,
                "endpoint": checked.endpoint,
                "models": sorted(verdict.models)[:SHOWN_MODELS],
                "valid": verdict.ok,
                "error_count": verdict.error_count,
                "errors": [error.to_wire() for error in verdict.errors],
                "plan": checked.plan.to_wire(),
            }
        ),
        end="",
    )


REPORTS: dict[str, Callable[[Checked], None]] = {"text": _text, "json": _json}


def _endpoint_of(path: Path) -> str:
    urls = urls_named(path, enough=1)
    if not urls:
        raise CommandFailed(f"no line of {path} names a 'url', so its endpoint is unknown: pass --endpoint", EXIT_USAGE)
    return urls[0]


def _summarise(path: Path, lines: int, endpoint: str, verdict: FileVerdict) -> None:
    models = ", ".join(sorted(verdict.models)[:SHOWN_MODELS]) or "none"
    if len(verdict.models) > SHOWN_MODELS:
        models += ", …"
    shown = len(verdict.errors)
    more = f" ({verdict.error_count - shown} more not listed)" if verdict.error_count > shown else ""
    state = "valid" if verdict.ok else f"invalid: {verdict.error_count} problem(s){more}"
    print(
        f"{path}: {lines} lines, {verdict.requests} requests, models: {models}, endpoint: {endpoint}: {state}",
        file=sys.stderr,
    )
