"""The `batchgate` command line: one parser assembled from a registry of command groups.

    server     serve, worker, keys: run the server or work on its database (DESIGN.md §1)
    resources  files …, batches …: one command per API call, JSON on stdout (DESIGN.md §5)
    run        run, watch: a whole batch from a file, with a live progress bar
    validate   validate: the server's line checks on a file, offline
    webhooks   webhooks add, list, remove: where a scope's batch events are sent

Every handler takes the parsed arguments and returns the exit code. A failure a user can cause
is one line on stderr (`batchgate: …`), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from batchgate import __version__
from batchgate.cli import resources, run, server, validate, webhooks
from batchgate.errors import BatchgateError, CommandFailed

COMMAND_GROUPS = (server, resources, run, validate, webhooks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgate", description="A self-hosted Batch API for LLM requests.")
    parser.add_argument("--version", action="version", version=f"batchgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except CommandFailed as failure:
        print(f"batchgate: {failure.message}", file=sys.stderr)
        return failure.exit_code
    except BatchgateError as exc:  # bad settings or config: bad usage
        print(f"batchgate: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("batchgate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `batchgate files list | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit does not fail too
        return 0
