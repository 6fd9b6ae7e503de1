"""WorkerContext: each worker part's slice of the settings carries the values of the Settings it was built from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from batchgate.scratch_ids import scratch_folder
from batchgate.settings import Settings
from batchgate.worker.context import WorkerContext

SLICES = ("leases", "execution", "finalizing", "worker_loop", "validation", "reading", "courier")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every field read by a slice differs from the others, so a swapped field shows."""
    return Settings(
        data_dir=tmp_path,
        lease_seconds=11.0,
        poll_interval_seconds=0.3,
        commit_interval_seconds=0.07,
        cancel_grace_seconds=13.0,
        max_line_bytes=17_000,
        file_retention_seconds=19_000,
        worker_shards=23,
        max_shards_per_batch=5,
        retention_interval_seconds=29.0,
        stale_temp_seconds=31.0,
        max_lines=37_000,
        shard_lines=41,
        max_json_depth=43,
        max_reported_errors=47,
        webhooks_allow_private=True,
        webhook_timeout_seconds=53.0,
        webhook_retry_base_seconds=59.0,
        webhook_retry_max_seconds=61.0,
        webhook_retry_window_seconds=67.0,
        webhook_concurrency=71,
    )


@pytest.mark.parametrize("name", SLICES)
def test_each_slice_holds_the_settings_of_the_same_name(settings, name):
    part = getattr(WorkerContext(settings, None, None, None, "w1"), name)  # type: ignore[arg-type]
    for field in dataclasses.fields(part):
        expected = scratch_folder(settings) if field.name == "scratch_folder" else getattr(settings, field.name)
        assert getattr(part, field.name) == expected, f"{name}.{field.name}"


def test_a_context_with_other_settings_has_slices_built_from_them(settings):
    ctx = WorkerContext(settings, None, None, None, "w1")  # type: ignore[arg-type]
    changed = dataclasses.replace(ctx, settings=dataclasses.replace(settings, shard_lines=2, worker_shards=3))
    assert (changed.validation.shard_lines, changed.worker_loop.worker_shards) == (2, 3)
    assert (ctx.validation.shard_lines, ctx.worker_loop.worker_shards) == (41, 23)
