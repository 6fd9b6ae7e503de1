"""Taking over the leases of dead workers (worker/takeover.py) against real stores: a worker whose
PostgreSQL session ended, wherever it ran, and a process of this host that is gone."""

from __future__ import annotations

import subprocess
import sys

import batchgate.store
from batchgate.domain.liveness import ProcessIdentity, worker_id
from batchgate.worker.identity import process_state, this_process
from batchgate.worker.takeover import Takeover
from tests.integration.test_store import claim_one, make_batch, shard_batch

GRACE = 1.5
# A worker on another machine: nothing in our /proc can speak for it, only its session.
ELSEWHERE = worker_id("a1b2c3", "", 0, ProcessIdentity("gpu-7", 4242, 9000, "0123456789ab"))


async def test_a_worker_whose_postgresql_session_ended_has_its_leases_taken_after_the_grace(postgres_server):
    url = postgres_server.database()
    gone = await batchgate.store.open_store(url)
    heir = await batchgate.store.open_store(url)
    try:
        await shard_batch(heir, "batch_p", 2)
        await heir.insert_batch(make_batch("batch_v"))
        await gone.hold_session(ELSEWHERE, 1000.0)
        assert await gone.claim("batch_v", ELSEWHERE, 1000.0, 20)
        assert await claim_one(gone, ELSEWHERE, 1000.0, 20, 8) is not None
        takeover = Takeover(heir, GRACE)
        me = worker_id("d4e5f6", "", 0, this_process())

        assert await takeover.check(me, 1001.0) == [], "a live session keeps its leases"
        assert await takeover.check(me, 1003.0) == []
        await gone.close()  # the process ends, and its session with it
        assert await takeover.check(me, 1005.0) == [], "seen ended: its own proof may still run for the grace"
        assert await takeover.check(me, 1005.0 + GRACE) == [ELSEWHERE]
        taken = await claim_one(heir, me, 1005.0 + GRACE, 20, 8)
        assert taken is not None and taken.batch_id == "batch_p", "its shard is free long before its lease ends"
        assert await heir.claim("batch_v", me, 1005.0 + GRACE, 20), "and so is its batch lease"
    finally:
        await heir.close()


async def test_a_gone_process_of_this_host_has_its_leases_taken_at_once_a_live_one_keeps_them(tmp_path):
    store = await batchgate.store.open_store("sqlite:///" + str(tmp_path / "t.db"))
    try:
        here = this_process()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            seen = process_state(child.pid)
            child_id = worker_id(
                "c0ffee", "", 0, ProcessIdentity(here.hostname, child.pid, seen.start_ticks, here.host_key)
            )
            await shard_batch(store, "batch_h", 2)
            assert await claim_one(store, child_id, 1000.0, 20, 8) is not None
            takeover = Takeover(store, GRACE)
            me = worker_id("d4e5f6", "", 0, here)
            assert await takeover.check(me, 1001.0) == [], "a live process keeps its leases"
        finally:
            child.kill()
            child.wait()
        assert await takeover.check(me, 1002.0) == [child_id]
        assert (await claim_one(store, me, 1002.0, 20, 8)).shard == 0
    finally:
        await store.close()
