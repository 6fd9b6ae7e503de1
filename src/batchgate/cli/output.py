"""How a client command prints what the API answered: JSON, a jq filter's results, or a table for people."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jq
import orjson
from rich.console import Console
from rich.table import Table

from batchgate.cli.client import EXIT_USAGE
from batchgate.cli.progress import Counts
from batchgate.errors import CommandFailed

PIPED_WIDTH = 200
Cell = Callable[[dict[str, Any]], str]


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output").add_mutually_exclusive_group()
    group.add_argument("--jq", metavar="EXPR", help="print the jq filter's results instead (strings raw, like jq -r)")
    group.add_argument(
        "--output", choices=("json", "table"), default="json", help="json (default) or a table for people"
    )


@dataclass(frozen=True)
class Printer:
    """Made before the API call, so a bad jq expression fails before anything is sent."""

    fmt: str
    program: Any = None  # a compiled jq program

    @classmethod
    def of(cls, args: argparse.Namespace) -> Printer:
        if not args.jq:
            return cls(args.output)
        try:
            return cls("jq", jq.compile(args.jq))
        except ValueError as exc:
            raise CommandFailed(f"bad --jq expression: {_first_line(exc)}", EXIT_USAGE) from None

    def emit(self, value: Any) -> None:
        RENDERERS[self.fmt](self, value)


def _json(printer: Printer, value: Any) -> None:
    sys.stdout.write(pretty_json(value))


def _jq(printer: Printer, value: Any) -> None:
    try:
        results = printer.program.input_value(value).all()
    except ValueError as exc:
        raise CommandFailed(f"--jq: {_first_line(exc)}", EXIT_USAGE) from None
    for result in results:
        sys.stdout.write(result + "\n" if isinstance(result, str) else pretty_json(result))


def _table(printer: Printer, value: Any) -> None:
    # Piped, a table keeps whole ids on one line rather than folding them to a guessed 80 columns.
    Console(width=None if sys.stdout.isatty() else PIPED_WIDTH).print(table_of(value))


RENDERERS: dict[str, Callable[[Printer, Any], None]] = {"json": _json, "jq": _jq, "table": _table}


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- tables --------------------------------------------------------------------------------------------


def _field(name: str) -> Cell:
    return lambda obj: "" if obj.get(name) is None else str(obj[name])


def _time(name: str) -> Cell:
    def cell(obj: dict[str, Any]) -> str:
        value = obj.get(name)
        return "" if value is None else datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")

    return cell


def _cache_hit(obj: dict[str, Any]) -> str:
    rate = Counts.of(obj).cache_hit_rate
    return "" if rate is None else f"{rate:.0%}"


def _counts(obj: dict[str, Any]) -> str:
    counts = obj.get("request_counts") or {}
    return f"{counts.get('completed', 0)} ok / {counts.get('failed', 0)} failed / {counts.get('total', 0)}"


# The columns of each kind of object, by its "object" field.
COLUMNS: dict[str, list[tuple[str, Cell]]] = {
    "file": [
        ("id", _field("id")),
        ("filename", _field("filename")),
        ("purpose", _field("purpose")),
        ("bytes", _field("bytes")),
        ("status", _field("status")),
        ("created (UTC)", _time("created_at")),
    ],
    "batch": [
        ("id", _field("id")),
        ("status", _field("status")),
        ("endpoint", _field("endpoint")),
        ("requests", _counts),
        ("cache hit", _cache_hit),  # cached ÷ input tokens, once an upstream reports cached tokens
        ("repeats saved", lambda obj: str(obj.get("duplicates_saved") or "")),  # lines not sent (docs/caching.md)
        ("created (UTC)", _time("created_at")),
        ("done by (UTC)", _time("estimated_completion_at")),  # the server's estimate, while it runs
    ],
    "webhook_endpoint": [
        ("id", _field("id")),
        ("url", _field("url")),
        ("events", lambda obj: ",".join(obj.get("events") or [])),
        ("created (UTC)", _time("created_at")),
    ],
}


def table_of(value: Any) -> Table:
    """A row per object of a list page, or a field per row for one object of a kind without columns."""
    if isinstance(value, dict) and value.get("object") == "list":
        rows = [row for row in value.get("data") or [] if isinstance(row, dict)]
        kind = rows[0].get("object") if rows else None
        return _rows(COLUMNS.get(str(kind), COLUMNS["batch"]), rows)
    if isinstance(value, dict) and value.get("object") in COLUMNS and "deleted" not in value:
        return _rows(COLUMNS[value["object"]], [value])
    table = Table("field", "value")
    for key, item in value.items() if isinstance(value, dict) else [("value", value)]:
        table.add_row(str(key), item if isinstance(item, str) else orjson.dumps(item).decode())
    return table


def _rows(columns: list[tuple[str, Cell]], rows: list[dict[str, Any]]) -> Table:
    table = Table(*(title for title, _ in columns))
    for row in rows:
        table.add_row(*(cell(row) for _, cell in columns))
    return table
