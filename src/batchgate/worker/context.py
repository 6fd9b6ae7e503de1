"""What every worker stage needs, bundled once, and the few settings each stage reads.

Each stage reads its own small, frozen slice of the settings (built once, here, from Settings), so
what a stage depends on is visible at a glance and a test can give it just that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batchgate.blobs import BlobStore
from batchgate.settings import Settings
from batchgate.store import Store
from batchgate.upstream.router import Router


@dataclass(frozen=True, slots=True)
class LeaseTimes:
    """How long a lease lasts and how often it is renewed: the heartbeat and the runs."""

    lease_seconds: float
    poll_interval_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> LeaseTimes:
        return cls(settings.lease_seconds, settings.poll_interval_seconds)


@dataclass(frozen=True, slots=True)
class ExecuteSettings:
    """What sending a shard's lines reads: execute.py and its result writer."""

    commit_interval_seconds: float  # how long results gather before one grouped commit
    cancel_grace_seconds: float  # how long in-flight lines may finish after a cancel
    max_line_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> ExecuteSettings:
        return cls(settings.commit_interval_seconds, settings.cancel_grace_seconds, settings.max_line_bytes)


@dataclass(frozen=True, slots=True)
class FinalizeSettings:
    """What writing a batch's output and error files reads: finalize.py."""

    max_line_bytes: int
    file_retention_seconds: int  # how long the files live, unless the batch says otherwise

    @classmethod
    def of(cls, settings: Settings) -> FinalizeSettings:
        return cls(settings.max_line_bytes, settings.file_retention_seconds)


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings  # whole, for the top of the worker (worker.py) and validation; stages read their slice
    store: Store
    blobs: BlobStore
    router: Router
    worker_id: str
    clock: Callable[[], float] = field(default=time.time)
    leases: LeaseTimes = field(init=False)
    execution: ExecuteSettings = field(init=False)
    finalizing: FinalizeSettings = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leases", LeaseTimes.of(self.settings))
        object.__setattr__(self, "execution", ExecuteSettings.of(self.settings))
        object.__setattr__(self, "finalizing", FinalizeSettings.of(self.settings))

    def now(self) -> int:
        return int(self.clock())
