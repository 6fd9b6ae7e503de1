"""The server side of the command line: serve, worker, keys (DESIGN.md §1)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from batchgate.settings import Settings, env_var

log = logging.getLogger("batchgate")

# (flag, settings field, type, help) shared by the commands that take them.
COMMON_FLAGS = [
    ("--data-dir", "data_dir", Path, "folder for the embedded database and files (default ./.batchgate)"),
    ("--config", "config", Path, "TOML file with settings and [[upstreams]]"),
    (
        "--database-url",
        "database_url",
        str,
        "sqlite:///path.db or postgresql://user:pass@host/db (default: SQLite inside the data dir)",
    ),
    (
        "--storage-url",
        "storage_url",
        str,
        "a folder, or s3://bucket/prefix with the AWS_* variables (default: a folder inside the data dir)",
    ),
    ("--log-level", "log_level", str, "debug, info, warning or error (default info)"),
    ("--log-format", "log_format", str, "text, or json: one JSON object per line (default text)"),
]
WORKER_FLAGS = [
    ("--metrics-port", "metrics_port", int, "serve GET /metrics on this port (on --host's address; default: none)"),
]
SERVE_FLAGS = [
    ("--host", "host", str, "address to listen on (default 127.0.0.1)"),
    ("--port", "port", int, "port to listen on (default 8080)"),
]


def _add_flags(parser: argparse.ArgumentParser, flags) -> None:
    for flag, name, kind, text in flags:
        parser.add_argument(flag, dest=name, type=kind, default=None, help=f"{text} [env {env_var(name)}]")


def register(commands: argparse._SubParsersAction) -> None:
    """serve, worker and keys: the commands that run the server or work on its database directly."""
    serve = commands.add_parser("serve", help="run the API and an embedded worker")
    _add_flags(serve, SERVE_FLAGS + COMMON_FLAGS)
    serve.add_argument(
        "--no-worker",
        dest="no_worker",
        action="store_const",
        const=True,
        default=None,
        help=f"serve the API only (workers run elsewhere) [env {env_var('no_worker')}]",
    )
    serve.set_defaults(handler=server_side(cmd_serve))

    worker = commands.add_parser("worker", help="run only the worker (for scale-out)")
    _add_flags(worker, WORKER_FLAGS + COMMON_FLAGS)
    worker.set_defaults(handler=server_side(cmd_worker))

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; its secret is printed on the last line")
    create.add_argument("--name", required=True, help="a name for the key")
    create.add_argument(
        "--owner",
        help="who owns the objects made with this key (default: the name); "
        "keys of one owner see the same files and batches",
    )
    create.set_defaults(handler=server_side(cmd_keys_create))
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(handler=server_side(cmd_keys_list))
    revoke = key_commands.add_parser("revoke", help="revoke a key by id or name")
    revoke.add_argument("key", help="the key's id or name")
    revoke.set_defaults(handler=server_side(cmd_keys_revoke))
    for sub in (create, listing, revoke):
        _add_flags(sub, COMMON_FLAGS)


ServerCommand = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int | None]]


def server_side(command: ServerCommand) -> Callable[[argparse.Namespace], int]:
    """A handler that builds the Settings from the flags, sets up logging and runs `command` on an event loop."""

    def handler(args: argparse.Namespace) -> int:
        from batchgate.logs import configure

        settings = Settings.load({k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__})
        configure(settings)
        return asyncio.run(command(settings, args)) or 0

    return handler


async def cmd_serve(settings: Settings, args) -> None:
    await run_server(settings, with_api=True, with_worker=not settings.no_worker)


async def cmd_worker(settings: Settings, args) -> None:
    await run_server(settings, with_api=False, with_worker=True)


async def run_server(settings: Settings, *, with_api: bool, with_worker: bool) -> None:
    # The server's modules load here rather than with the command line, so client commands start quickly.
    from batchgate import __version__
    from batchgate.allocator import limit_arenas
    from batchgate.api.app import create_app
    from batchgate.api.scrape import serve_metrics
    from batchgate.api.server import serve_api
    from batchgate.api.services import Services
    from batchgate.blobs import open_blobs
    from batchgate.collector import freeze_startup_objects
    from batchgate.store import open_store
    from batchgate.store.redact import redact
    from batchgate.upstream.router import Router
    from batchgate.worker.context import WorkerContext
    from batchgate.worker.identity import new_worker_id
    from batchgate.worker.worker import Worker

    limit_arenas(settings.malloc_arenas)  # before the store and the file pool start their threads
    store = await open_store(settings.resolved_database_url)
    blobs = open_blobs(settings.resolved_storage_url)
    router = Router(settings)
    worker_id = new_worker_id()
    worker = Worker(WorkerContext(settings, store, blobs, router, worker_id)) if with_worker else None
    runner = metrics_runner = None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        if with_api:
            app = create_app(
                Services(settings, store, blobs, router=router, wake_worker=worker.wake if worker else (lambda: None))
            )
            runner = await serve_api(app, settings)
            log.info(
                "batchgate %s listening on http://%s:%d (database %s)",
                __version__,
                settings.host,
                settings.port,
                redact(settings.resolved_database_url),
            )
            if not any(key.revoked_at is None for key in await store.list_keys()):
                log.warning("no API keys yet: create one with 'batchgate keys create --name NAME'")
        if not with_api and settings.metrics_port is not None and settings.metrics_enabled:
            metrics_runner = await serve_metrics(settings, store, settings.metrics_port)
            log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
        if not settings.upstreams:
            log.info("no [[upstreams]] configured (--config): serving the built-in local models")
        freeze_startup_objects()
        worker_task = asyncio.create_task(worker.run()) if worker else None
        if worker:
            log.info("worker %s started", worker_id)
        waiters = [asyncio.create_task(stopping.wait())] + ([worker_task] if worker_task else [])
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if worker_task and worker_task.done() and worker_task.exception():
            log.error("the worker stopped", exc_info=worker_task.exception())
        if worker_task:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
    finally:
        for listener in (runner, metrics_runner):
            if listener is not None:
                await listener.cleanup()
        await router.close()
        await blobs.close()
        await store.close()


async def cmd_keys_create(settings: Settings, args) -> None:
    from batchgate import ids
    from batchgate.store import KeyRecord, open_store

    store = await open_store(settings.resolved_database_url)
    try:
        secret = ids.new_secret()
        key = KeyRecord(ids.new_id("key_"), args.name, args.owner or args.name, secret[:7], int(time.time()), None)
        await store.create_key(key, ids.hash_secret(secret))
        print(
            f"created key {key.id} (name {key.name}, owner {key.owner}); store the secret now, it is not shown again:"
        )
        print(secret)
    finally:
        await store.close()


async def cmd_keys_list(settings: Settings, args) -> None:
    from batchgate.store import open_store

    store = await open_store(settings.resolved_database_url)
    try:
        for key in await store.list_keys():
            state = f"revoked at {key.revoked_at}" if key.revoked_at else "active"
            print(f"{key.id}\t{key.name}\towner={key.owner}\t{key.prefix}…\tcreated {key.created_at}\t{state}")
    finally:
        await store.close()


async def cmd_keys_revoke(settings: Settings, args) -> int:
    from batchgate.store import open_store

    store = await open_store(settings.resolved_database_url)
    try:
        count = await store.revoke_key(args.key, int(time.time()))
    finally:
        await store.close()
    if not count:
        print(f"batchgate: no active key with id or name {args.key!r}", file=sys.stderr)
        return 1
    print(f"revoked {count} key(s)")
    return 0
