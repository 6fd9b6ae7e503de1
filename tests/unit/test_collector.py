"""collector.py: once the server is up, what startup loaded is out of the cycle collector's sight."""

from __future__ import annotations

import gc

import pytest

from batchgate.collector import YOUNGEST_THRESHOLD, freeze_startup_objects


@pytest.fixture
def restored_collector():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_startup_objects_are_frozen_and_young_passes_are_rarer(restored_collector):
    loaded = [object() for _ in range(1000)]  # something startup keeps for good
    freeze_startup_objects()
    assert gc.get_freeze_count() >= len(loaded)
    assert gc.get_threshold()[0] == YOUNGEST_THRESHOLD
    gc.collect()
    assert gc.get_freeze_count() >= len(loaded), "a full pass leaves frozen objects where they are"
