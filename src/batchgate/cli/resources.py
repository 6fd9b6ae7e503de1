"""`batchgate files …` and `batchgate batches …`: one command per API call, named as the SDKs name them.

Each prints the API's JSON object or list page on stdout (or --jq's results, or a table).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgate.cli.client import EXIT_USAGE, ApiClient, Connection, add_connection_flags
from batchgate.cli.output import Printer, add_output_flags
from batchgate.errors import CommandFailed

Call = Callable[[ApiClient, argparse.Namespace], Any]
Flags = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    flags: Flags
    call: Call  # the API call; what it answers is printed
    prints: bool = True  # False: the call writes its own output (file content)


def metadata_pair(text: str) -> tuple[str, str]:
    """`--metadata k=v` → (k, v); argparse turns the error into a usage error (exit 2)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return number


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """The batch settings `batches create` and `run` share."""
    parser.add_argument(
        "--max-concurrency", type=positive_int, metavar="N", help="lines in flight at once for this batch"
    )
    parser.add_argument(
        "--metadata",
        type=metadata_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a metadata pair for the batch (repeatable)",
    )
    parser.add_argument(
        "--completion-window",
        default="24h",
        metavar="W",
        help="the batch's completion window: whole hours or days from 1h to 7d (default 24h)",
    )


def batch_request(args: argparse.Namespace, input_file_id: str, endpoint: str) -> dict[str, Any]:
    """The body of POST /batches from `add_batch_options`' flags."""
    body: dict[str, Any] = {
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": args.completion_window,
    }
    if args.metadata:
        body["metadata"] = dict(args.metadata)
    if args.max_concurrency is not None:
        body["max_concurrency"] = args.max_concurrency
    return body


def _object_id(what: str) -> Flags:
    def flags(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id", metavar="ID", help=f"the {what}'s id")

    return flags


def _page_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=positive_int, metavar="N", help="how many to list (the API's default: 20)")
    parser.add_argument("--after", metavar="ID", help="list those after this id (the last_id of a page)")


def _page(args: argparse.Namespace) -> dict[str, Any]:
    return {"limit": args.limit, "after": args.after}


# --- files ----------------------------------------------------------------------------------------------


def _upload_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a JSONL file of requests")
    parser.add_argument("--purpose", default="batch", help="the file's purpose (default batch)")


def _upload(api: ApiClient, args: argparse.Namespace) -> Any:
    return api.upload(readable(args.file), args.purpose)


def readable(path: Path) -> Path:
    if not path.is_file():
        raise CommandFailed(f"no such file: {path}", EXIT_USAGE)
    return path


def _content_flags(parser: argparse.ArgumentParser) -> None:
    _object_id("file")(parser)
    parser.add_argument("-o", "--output-file", dest="path", type=Path, help="write here (default: stdout)")


def _content(api: ApiClient, args: argparse.Namespace) -> None:
    if args.path is None:
        api.download(args.id, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    written = api.download_to(args.id, args.path)
    print(f"wrote {written} bytes to {args.path}", file=sys.stderr)


FILES = (
    Command("upload", "upload a JSONL file", _upload_flags, _upload),
    Command("list", "list files", _page_flags, lambda api, args: api.call("GET", "/files", params=_page(args))),
    Command("get", "a file's object", _object_id("file"), lambda api, args: api.call("GET", f"/files/{args.id}")),
    Command("content", "download a file's bytes", _content_flags, _content, prints=False),
    Command("delete", "delete a file", _object_id("file"), lambda api, args: api.call("DELETE", f"/files/{args.id}")),
)

# --- batches --------------------------------------------------------------------------------------------


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-file-id", required=True, metavar="ID", help="the uploaded input file")
    parser.add_argument("--endpoint", required=True, metavar="E", help="e.g. /v1/chat/completions")
    add_batch_options(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file as the batch would and print its plan (lines, estimated input tokens, prefix groups, "
        "tokens in shared prefixes) instead of creating the batch",
    )


def _create(api: ApiClient, args: argparse.Namespace) -> Any:
    body = batch_request(args, args.input_file_id, args.endpoint)
    if args.dry_run:
        body["dry_run"] = True
    return api.call("POST", "/batches", json=body)


BATCHES = (
    Command("create", "create a batch over an uploaded file", _create_flags, _create),
    Command(
        "list", "list batches, newest first", _page_flags, lambda a, args: a.call("GET", "/batches", params=_page(args))
    ),
    Command("get", "a batch's object", _object_id("batch"), lambda a, args: a.call("GET", f"/batches/{args.id}")),
    Command(
        "cancel", "cancel a batch", _object_id("batch"), lambda a, args: a.call("POST", f"/batches/{args.id}/cancel")
    ),
    Command(
        "retry",
        "a new batch of the lines an ended batch failed, cancelled or let expire",
        _object_id("batch"),
        lambda a, args: a.call("POST", f"/batches/{args.id}/retry"),
    ),
)

GROUPS = {
    "files": ("upload, list, get, download and delete files", FILES),
    "batches": ("create, list, get, cancel and retry batches", BATCHES),
}


def register(commands: argparse._SubParsersAction) -> None:
    for group_name, (group_help, group_commands) in GROUPS.items():
        group = commands.add_parser(group_name, help=group_help)
        sub = group.add_subparsers(dest=f"{group_name}_command", required=True)
        for command in group_commands:
            parser = sub.add_parser(command.name, help=command.help)
            command.flags(parser)
            if command.prints:
                add_output_flags(parser)
            add_connection_flags(parser)
            parser.set_defaults(handler=_handler(command))


def _handler(command: Command) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        printer = Printer.of(args) if command.prints else None
        with ApiClient(Connection.of(args)) as api:
            answer = command.call(api, args)
        if printer is not None:
            printer.emit(answer)
        return 0

    return handler
