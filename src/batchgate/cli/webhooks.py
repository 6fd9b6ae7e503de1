"""`batchgate webhooks add|list|remove`: the endpoints a key's scope gets batch events at (DESIGN.md §5).

`add` prints the endpoint's id, then its signing secret alone on the last line (shown only then);
`list` and `remove` print the API's answer like every client command (JSON, --jq, or a table).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from batchgate.cli.client import ApiClient, Connection, add_connection_flags
from batchgate.cli.output import Printer, add_output_flags
from batchgate.domain.webhooks import EVENT_TYPES


def _add(api: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"url": args.url}
    if args.events:
        body["events"] = [event.strip() for event in args.events.split(",") if event.strip()]
    endpoint = api.call("POST", "/webhooks", json=body)
    print(endpoint["id"])
    print(endpoint["secret"])


def _list(api: ApiClient, args: argparse.Namespace) -> Any:
    return api.call("GET", "/webhooks")


def _remove(api: ApiClient, args: argparse.Namespace) -> Any:
    return api.call("DELETE", f"/webhooks/{quote(args.id, safe='')}")


def _handler(call: Callable[[ApiClient, argparse.Namespace], Any], prints: bool) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        printer = Printer.of(args) if prints else None
        with ApiClient(Connection.of(args)) as api:
            answer = call(api, args)
        if printer is not None:
            printer.emit(answer)
        return 0

    return handler


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("webhooks", help="add, list and remove the endpoints batch events are sent to")
    sub = group.add_subparsers(dest="webhooks_command", required=True)
    adding = sub.add_parser(
        "add", help="send this scope's batch events to URL; prints the id, then the signing secret on the last line"
    )
    adding.add_argument("url", metavar="URL", help="the http:// or https:// URL events are POSTed to")
    adding.add_argument(
        "--events", metavar="TYPES", help=f"comma-separated event types (default: all of {','.join(EVENT_TYPES)})"
    )
    adding.set_defaults(handler=_handler(_add, prints=False))
    listing = sub.add_parser("list", help="the webhook endpoints of this scope (never their secrets)")
    listing.set_defaults(handler=_handler(_list, prints=True))
    removing = sub.add_parser("remove", help="remove a webhook endpoint; its undelivered events are dropped")
    removing.add_argument("id", metavar="ID", help="the endpoint's id (we_…)")
    removing.set_defaults(handler=_handler(_remove, prints=True))
    for parser in (listing, removing):
        add_output_flags(parser)
    for parser in (adding, listing, removing):
        add_connection_flags(parser)
