"""What the handlers reach: one object, stored on the app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from batchgate.blobs import BlobStore
from batchgate.settings import Settings
from batchgate.store import Store
from batchgate.upstream.router import Router


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    blobs: BlobStore
    router: Router | None = None  # the synchronous endpoints' way to the models; None serves batches only
    wake_worker: Callable[[], None] = lambda: None
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> int:
        return int(self.clock())


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
