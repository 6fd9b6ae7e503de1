"""Pool.pick with affinity: a prefix group keeps its member while that one is healthy and within its load
bound, and moves to the next on the ring when not; no network (the members are never called)."""

from __future__ import annotations

import pytest

from batchgate.domain.prefix import prefix_key
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.pool import Pool
from batchgate.upstream.router import Router

CHAT = "/v1/chat/completions"
NAMES = ("gpu-a", "gpu-b", "gpu-c")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pools():
    made: list[Router] = []

    def make(names=NAMES, **settings) -> Pool:
        upstreams = tuple(UpstreamConfig(name, f"http://{name}.invalid/v1", ("m",)) for name in names)
        router = Router(Settings(upstreams=upstreams, eject_after_failures=1, **settings), Clock())
        made.append(router)
        pool = router.pool("m")
        assert pool is not None
        return pool

    yield make
    for router in made:
        await router.close()


def group(i: int) -> dict:
    return {"model": "m", "messages": [{"role": "system", "content": f"task {i}"}, {"role": "user", "content": "x"}]}


def key_of(pool: Pool, i: int) -> bytes:
    key = pool.key_of(CHAT, group(i))
    assert key is not None
    return key


async def test_a_group_goes_to_one_member_and_groups_spread(pools):
    pool = pools()
    chosen = {i: pool.pick(key=key_of(pool, i)).name for i in range(60)}
    assert all(pool.pick(key=key_of(pool, i)).name == name for i, name in chosen.items())
    assert set(chosen.values()) == set(NAMES)


async def test_an_ejected_member_s_groups_move_to_the_next_on_the_ring_and_only_they(pools):
    pool = pools()
    before = {i: pool.pick(key=key_of(pool, i)) for i in range(60)}
    out = pool.members[0]
    out.health.failed(1000.0)  # one failure ejects it (eject_after_failures=1)
    after = {i: pool.pick(key=key_of(pool, i)) for i in range(60)}
    for i in before:
        if before[i] is out:
            assert after[i] is not out
        else:
            assert after[i] is before[i]


async def test_an_overloaded_member_sheds_to_the_next_on_the_ring(pools):
    pool = pools()
    key = key_of(pool, 7)
    home = pool.pick(key=key)
    for member in pool.members:
        member.load = 3
    home.load = 10  # 16 held, 17 with the new one: mean 17/3, bound ceil(1.25 × 17/3) = 8
    assert pool.pick(key=key) is not home
    home.load = 4  # 10 held, mean 11/3, bound 5: one more keeps it within, so the group stays
    assert pool.pick(key=key) is home


async def test_a_retry_avoids_the_member_that_refused_it(pools):
    pool = pools()
    key = key_of(pool, 3)
    home = pool.pick(key=key)
    assert pool.pick(avoid=home, key=key) is not home


async def test_without_cache_aware_or_without_a_key_the_least_loaded_takes_it(pools):
    pool = pools(cache_aware=False)
    assert pool.key_of(CHAT, group(1)) is None
    for member, load in zip(pool.members, (3, 1, 2), strict=True):
        member.load = load
    assert pool.pick().name == "gpu-b"
    aware = pools()
    for member, load in zip(aware.members, (3, 1, 2), strict=True):
        member.load = load
    assert aware.pick(key=None).name == "gpu-b"  # a body with no prefix keeps least-loaded


async def test_a_lone_upstream_never_computes_a_key(pools):
    pool = pools(names=("only",))
    assert pool.key_of(CHAT, group(1)) is None
    assert prefix_key(CHAT, group(1)) is not None  # the body has a key; the lone pool just does not ask
