"""What every worker stage needs, bundled once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from batchgate.blobs import BlobStore
from batchgate.settings import Settings
from batchgate.store import Store
from batchgate.upstream.router import Router


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    store: Store
    blobs: BlobStore
    router: Router
    worker_id: str
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> int:
        return int(self.clock())
