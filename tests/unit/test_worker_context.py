"""WorkerContext: each worker part's slice of the settings carries the values of the Settings it was built from.

Slices are filled by name (`slice_of`): a field must be a setting of the same name, or one Settings derives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from batchgate.scratch_ids import scratch_folder
from batchgate.settings import Settings
from batchgate.worker.context import DERIVED, PARTS, WorkerContext, slice_of

SLICES = tuple(PARTS)
SETTING_NAMES = {field.name for field in dataclasses.fields(Settings)}


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
def test_every_field_of_a_slice_is_a_setting_of_the_same_name(name):
    unknown = [f.name for f in dataclasses.fields(PARTS[name]) if f.name not in SETTING_NAMES | DERIVED.keys()]
    assert not unknown, f"{PARTS[name].__name__} has fields no setting is named after: {unknown}"


def test_derived_values_are_not_settings_too():
    """A derived name that became a setting would be read from the derivation, silently."""
    assert not DERIVED.keys() & SETTING_NAMES


def test_every_slice_of_the_context_is_kept_under_its_attribute():
    kept = {f.name for f in dataclasses.fields(WorkerContext) if not f.init}
    assert kept == set(PARTS)


def test_a_slice_whose_field_names_no_setting_fails_to_build(settings):
    @dataclasses.dataclass(frozen=True)
    class Stale:
        lease_seconds: float
        lease_secs: float  # as if the setting had been renamed under it

    with pytest.raises(AttributeError, match="lease_secs"):
        slice_of(Stale, settings)


def test_slice_of_takes_each_value_by_name(settings):
    assert slice_of(PARTS["leases"], settings) == PARTS["leases"](lease_seconds=11.0, poll_interval_seconds=0.3)


@pytest.mark.parametrize("name", SLICES)
def test_each_slice_holds_the_settings_of_the_same_name(settings, name):
    part = getattr(WorkerContext(settings, None, None, None, "w1"), name)  # type: ignore[arg-type]
    for field in dataclasses.fields(part):
        expected = DERIVED[field.name](settings) if field.name in DERIVED else getattr(settings, field.name)
        assert getattr(part, field.name) == expected, f"{name}.{field.name}"


def test_a_context_with_other_settings_has_slices_built_from_them(settings):
    ctx = WorkerContext(settings, None, None, None, "w1")  # type: ignore[arg-type]
    changed = dataclasses.replace(ctx, settings=dataclasses.replace(settings, shard_lines=2, worker_shards=3))
    assert (changed.validation.shard_lines, changed.worker_loop.worker_shards) == (2, 3)
    assert (ctx.validation.shard_lines, ctx.worker_loop.worker_shards) == (41, 23)


def test_the_scratch_folder_is_derived_from_the_data_dir(settings):
    ctx = WorkerContext(settings, None, None, None, "w1")  # type: ignore[arg-type]
    assert ctx.worker_loop.scratch_folder == ctx.validation.scratch_folder == scratch_folder(settings)
