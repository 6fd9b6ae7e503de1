"""What every worker stage needs, bundled once, and the few settings each stage reads.

Each stage reads its own small, frozen slice of the settings (built once, here, from Settings), so
what a stage depends on is visible at a glance and a test can give it just that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from batchgate.blobs import BlobStore
from batchgate.scratch_ids import scratch_folder
from batchgate.settings import Settings
from batchgate.store import Store
from batchgate.upstream.router import Router
from batchgate.worker.duplicates import Duplicates


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


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """What the worker loop reads besides its lease times: worker.py."""

    worker_shards: int  # shards this worker works on at once
    max_shards_per_batch: int  # shards of one batch worked on at once, by all workers together
    retention_interval_seconds: float  # how often expired files and stale scratch files are swept
    stale_temp_seconds: float  # scratch files untouched this long were left by a crash
    scratch_folder: Path

    @classmethod
    def of(cls, settings: Settings) -> LoopSettings:
        return cls(
            settings.worker_shards,
            settings.max_shards_per_batch,
            settings.retention_interval_seconds,
            settings.stale_temp_seconds,
            scratch_folder(settings),
        )


@dataclass(frozen=True, slots=True)
class ValidateSettings:
    """What the validating stage reads: validate.py, and cutting the shards as it goes (batch_run.py).

    The first four are LineLimits' own, so LineLimits.of takes this slice as it takes Settings.
    """

    max_lines: int
    max_line_bytes: int
    shard_lines: int  # requests per shard
    max_json_depth: int
    max_reported_errors: int
    max_shards_per_batch: int
    scratch_folder: Path  # where the custom_id ledger lives

    @classmethod
    def of(cls, settings: Settings) -> ValidateSettings:
        return cls(
            settings.max_lines,
            settings.max_line_bytes,
            settings.shard_lines,
            settings.max_json_depth,
            settings.max_reported_errors,
            settings.max_shards_per_batch,
            scratch_folder(settings),
        )


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """What reading a batch's input file reads: inputs.py, for every stage."""

    max_line_bytes: int  # a longer line is handed out as None

    @classmethod
    def of(cls, settings: Settings) -> ReadSettings:
        return cls(settings.max_line_bytes)


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

    @classmethod
    def of(cls, settings: Settings) -> CourierSettings:
        return cls(
            settings.webhooks_allow_private,
            settings.webhook_timeout_seconds,
            settings.webhook_retry_base_seconds,
            settings.webhook_retry_max_seconds,
            settings.webhook_retry_window_seconds,
            settings.webhook_concurrency,
            settings.lease_seconds,
            settings.poll_interval_seconds,
        )


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings  # the one source of the slices below; every worker part reads its slice, never this
    store: Store
    blobs: BlobStore
    router: Router
    worker_id: str
    clock: Callable[[], float] = field(default=time.time)
    duplicates: Duplicates = field(default_factory=Duplicates)  # repeats sent once, by batch (worker/duplicates.py)
    leases: LeaseTimes = field(init=False)
    execution: ExecuteSettings = field(init=False)
    finalizing: FinalizeSettings = field(init=False)
    worker_loop: LoopSettings = field(init=False)
    validation: ValidateSettings = field(init=False)
    reading: ReadSettings = field(init=False)
    courier: CourierSettings = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leases", LeaseTimes.of(self.settings))
        object.__setattr__(self, "execution", ExecuteSettings.of(self.settings))
        object.__setattr__(self, "finalizing", FinalizeSettings.of(self.settings))
        object.__setattr__(self, "worker_loop", LoopSettings.of(self.settings))
        object.__setattr__(self, "validation", ValidateSettings.of(self.settings))
        object.__setattr__(self, "reading", ReadSettings.of(self.settings))
        object.__setattr__(self, "courier", CourierSettings.of(self.settings))

    def now(self) -> int:
        return int(self.clock())
