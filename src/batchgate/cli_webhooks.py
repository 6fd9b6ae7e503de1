"""`batchgate webhooks add|list|remove`: the endpoints a key's scope gets batch events at.

    batchgate webhooks add URL [--events batch.completed,...]   the id, then the secret alone on the last line
    batchgate webhooks list                                      the API's list page (JSON)
    batchgate webhooks remove ID                                 the API's deletion object (JSON)

Exit codes: 0 success; 1 the API refused (4xx); 2 bad usage; 3 the server could not be reached or
answered 5xx. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from batchgate import __version__
from batchgate.domain.webhooks import EVENT_TYPES

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8080"
PREFIX = "/api/v1/llm"
TIMEOUT = 60.0
# (flag, attribute, environment variable, help)
CONNECTION_FLAGS = (
    ("--server-url", "server_url", "BATCHGATE_URL", f"the batchgate server (default {DEFAULT_URL})"),
    ("--api-key", "api_key", "BATCHGATE_API_KEY", "the API key (see 'batchgate keys create')"),
    ("--on-behalf-of", "on_behalf_of", "BATCHGATE_ON_BEHALF_OF", "the X-On-Behalf-Of value to act for"),
)


class CommandFailed(Exception):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Connection:
    url: str
    headers: dict[str, str]

    @classmethod
    def of(cls, args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Connection:
        values = {name: getattr(args, name, None) or env.get(var) or None for _, name, var, _ in CONNECTION_FLAGS}
        if not values["api_key"]:
            raise CommandFailed("no API key: pass --api-key or set BATCHGATE_API_KEY", EXIT_USAGE)
        url = (values["server_url"] or DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CommandFailed(f"the server URL must start with http:// or https://, not {url!r}", EXIT_USAGE)
        headers = {"Authorization": f"Bearer {values['api_key']}", "User-Agent": f"batchgate-cli/{__version__}"}
        if values["on_behalf_of"]:
            headers["X-On-Behalf-Of"] = values["on_behalf_of"]
        return cls(url, headers)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON call; its decoded answer, or CommandFailed with the exit code its failure maps to."""
        data = None if body is None else orjson.dumps(body)
        headers = {**self.headers, **({"Content-Type": "application/json"} if data is not None else {})}
        request = urllib.request.Request(self.url + PREFIX + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return orjson.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise _failure(exc.code, exc.read(), exc.reason) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CommandFailed(f"cannot reach the server at {self.url}: {reason}", EXIT_UNREACHABLE) from None


def _failure(status: int, body: bytes, reason: str) -> CommandFailed:
    try:
        message = str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = reason or "no message"
    if status >= 500:
        return CommandFailed(f"the server failed (HTTP {status}): {message}", EXIT_UNREACHABLE)
    return CommandFailed(f"{message} (HTTP {status})", EXIT_REFUSED)


def _print_json(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def add(connection: Connection, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"url": args.url}
    if args.events:
        body["events"] = [event.strip() for event in args.events.split(",") if event.strip()]
    endpoint = connection.call("POST", "/webhooks", body)
    print(endpoint["id"])
    print(endpoint["secret"])


def list_endpoints(connection: Connection, args: argparse.Namespace) -> None:
    _print_json(connection.call("GET", "/webhooks"))


def remove(connection: Connection, args: argparse.Namespace) -> None:
    _print_json(connection.call("DELETE", f"/webhooks/{quote(args.id, safe='')}"))


def _handler(action):
    async def handle(settings: object, args: argparse.Namespace) -> int:
        try:
            action(Connection.of(args), args)
        except CommandFailed as exc:
            print(f"batchgate: {exc.message}", file=sys.stderr)
            return exc.exit_code
        return 0

    return handle


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    for flag, name, var, text in CONNECTION_FLAGS:
        group.add_argument(flag, dest=name, default=None, help=f"{text} [env {var}]")


def register(subparsers: Any) -> None:
    webhooks = subparsers.add_parser("webhooks", help="add, list and remove webhook endpoints for batch events")
    commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    adding = commands.add_parser(
        "add", help="send batch events to URL; prints the endpoint's id, then its signing secret on the last line"
    )
    adding.add_argument("url", metavar="URL", help="the http:// or https:// URL events are POSTed to")
    adding.add_argument(
        "--events",
        metavar="TYPES",
        help=f"comma-separated event types (default: all of {','.join(EVENT_TYPES)})",
    )
    adding.set_defaults(handler=_handler(add))
    listing = commands.add_parser("list", help="list the webhook endpoints of this key's scope (never their secrets)")
    listing.set_defaults(handler=_handler(list_endpoints))
    removing = commands.add_parser("remove", help="remove a webhook endpoint; its undelivered events are dropped")
    removing.add_argument("id", metavar="ID", help="the endpoint's id (we_…)")
    removing.set_defaults(handler=_handler(remove))
    for parser in (adding, listing, removing):
        _connection_flags(parser)
