"""What every worker stage needs, bundled once, and the few settings each stage reads.

Each stage reads its own small, frozen slice of the settings (built once, here, from Settings), so
what a stage depends on is visible at a glance and a test can give it just that. A slice's fields are
named as the settings they hold: `slice_of` fills each by name, so a setting renamed without its slice
fails a unit test (tests/unit/test_worker_context.py) rather than a worker.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from batchgate.blobs import BlobStore
from batchgate.scratch_ids import scratch_folder
from batchgate.settings import Settings
from batchgate.store import Store
from batchgate.upstream.router import Router
from batchgate.worker.duplicates import Flights
from batchgate.worker.per_batch import PerBatch, SharedTurns

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Slice = TypeVar("Slice", bound="DataclassInstance")

# The values a slice may hold that Settings derives from its fields rather than stores.
DERIVED: dict[str, Callable[[Settings], Any]] = {"scratch_folder": scratch_folder}


def slice_of(cls: type[Slice], settings: Settings) -> Slice:
    """`cls` with each field set to the Settings attribute of the same name (or its DERIVED value)."""
    return cls(**{part.name: _setting(settings, part.name) for part in dataclasses.fields(cls)})


def _setting(settings: Settings, name: str) -> Any:
    derive = DERIVED.get(name)
    return derive(settings) if derive is not None else getattr(settings, name)


@dataclass(frozen=True, slots=True)
class LeaseTimes:
    """How long a lease lasts and how often it is renewed: the heartbeat and the runs."""

    lease_seconds: float
    poll_interval_seconds: float


@dataclass(frozen=True, slots=True)
class ExecuteSettings:
    """What sending a shard's lines reads: execute.py and its result writer."""

    commit_interval_seconds: float  # how long results gather before one grouped commit
    cancel_grace_seconds: float  # how long in-flight lines may finish after a cancel
    max_line_bytes: int
    cache_aware: bool  # a prefix group's first line goes ahead of its siblings
    cache_warm_wait_seconds: float  # how long the siblings wait for its answer at most


@dataclass(frozen=True, slots=True)
class FinalizeSettings:
    """What writing a batch's output and error files reads: finalize.py."""

    max_line_bytes: int
    file_retention_seconds: int  # how long the files live, unless the batch says otherwise


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """What the worker loop reads besides its lease times: worker.py."""

    worker_shards: int  # shards this worker works on at once
    max_shards_per_batch: int  # shards of one batch worked on at once, by all workers together
    retention_interval_seconds: float  # how often expired files and stale scratch files are swept
    stale_temp_seconds: float  # scratch files untouched this long were left by a crash
    scratch_folder: Path


@dataclass(frozen=True, slots=True)
class ValidateSettings:
    """What the validating stage reads: validate.py, and cutting the shards as it goes (batch_run.py).

    Four of them are LineLimits' own, so LineLimits.of takes this slice as it takes Settings.
    """

    max_lines: int
    max_line_bytes: int
    shard_lines: int  # requests per shard
    max_json_depth: int
    max_reported_errors: int
    max_shards_per_batch: int
    scratch_folder: Path  # where the custom_id ledger lives
    cache_aware: bool  # plan the dispatch order by prefix group (dispatch_plan.py)


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """What reading a batch's input file reads: inputs.py, for every stage."""

    max_line_bytes: int  # a longer line is handed out as None


@dataclass(frozen=True, slots=True)
class CourierSettings:
    """What sending webhook events reads: webhooks/courier.py."""

    webhooks_allow_private: bool  # may URLs point at loopback, link-local and private addresses
    webhook_timeout_seconds: float  # one attempt's whole time
    webhook_retry_base_seconds: float
    webhook_retry_max_seconds: float
    webhook_retry_window_seconds: float  # retried until this long after the event
    webhook_concurrency: int  # attempts in flight at once
    lease_seconds: float  # a delivery's lease: one attempt's timeout and this
    poll_interval_seconds: float


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings  # the one source of the slices below; every worker part reads its slice, never this
    store: Store
    blobs: BlobStore
    router: Router
    worker_id: str
    clock: Callable[[], float] = field(default=time.time)
    # What a running batch's shards share here: its repeats' answers (worker/duplicates.py) and, behind a
    # prompt cache per slot, its lines out by prefix group (domain/group_turns.py).
    duplicates: PerBatch[Flights] = field(default_factory=lambda: PerBatch(Flights))
    turns: PerBatch[SharedTurns] = field(default_factory=lambda: PerBatch(SharedTurns))
    leases: LeaseTimes = field(init=False)
    execution: ExecuteSettings = field(init=False)
    finalizing: FinalizeSettings = field(init=False)
    worker_loop: LoopSettings = field(init=False)
    validation: ValidateSettings = field(init=False)
    reading: ReadSettings = field(init=False)
    courier: CourierSettings = field(init=False)

    def __post_init__(self) -> None:
        for name, part in PARTS.items():
            object.__setattr__(self, name, slice_of(part, self.settings))

    def now(self) -> int:
        return int(self.clock())


# Each slice of the context, by the attribute it is kept under.
PARTS: dict[str, type[DataclassInstance]] = {
    "leases": LeaseTimes,
    "execution": ExecuteSettings,
    "finalizing": FinalizeSettings,
    "worker_loop": LoopSettings,
    "validation": ValidateSettings,
    "reading": ReadSettings,
    "courier": CourierSettings,
}
