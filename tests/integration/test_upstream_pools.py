"""The Router against real HTTP mock upstreams in process: pools, ejection, 429 pauses, AIMD, model limits."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from batchgate.domain.fairness import ANONYMOUS, Flow
from batchgate.domain.results import Outcome
from batchgate.metrics import REGISTRY
from batchgate.settings import ModelLimits, Settings, UpstreamConfig
from batchgate.upstream.router import KINDS, Router
from tests.support.mock_upstream import MOCK, make_app


@pytest.fixture
async def serve(tmp_path):
    """serve(**make_app options) → (base_url, mock state, log path) of a mock upstream on a free port."""
    servers: list[TestServer] = []

    async def start(**options):
        log = tmp_path / f"mock{len(servers)}.log"
        app = make_app(str(log), **options)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}/v1", app[MOCK], log

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def routers():
    made: list[Router] = []

    def make(*upstreams: UpstreamConfig, **settings) -> Router:
        defaults = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.05, "max_attempts": 10}
        router = Router(Settings(upstreams=upstreams, **{**defaults, **settings}))
        made.append(router)
        return router

    yield make
    for router in made:
        await router.close()


def chat(text: str, model: str = "m") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def logged(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def send_all(router: Router, bodies: list[dict], concurrency: int, flow: Flow = ANONYMOUS) -> list:
    window = asyncio.Semaphore(concurrency)

    async def one(body):
        async with window:
            return await router.send("/v1/chat/completions", body, flow=flow)

    return await asyncio.gather(*(one(b) for b in bodies))


async def test_upstreams_listing_the_matching_pattern_form_the_pool(routers):
    router = routers(
        UpstreamConfig("special", "http://s.invalid/v1", ("llama-3-70b",)),
        UpstreamConfig("gpu1", "http://g1.invalid/v1", ("llama-*",)),
        UpstreamConfig("gpu2", "http://g2.invalid/v1", ("qwen-*", "llama-*")),
        UpstreamConfig("rest", "http://r.invalid/v1", ("*",)),
    )
    assert [member.name for member in router.pool("llama-3-8b").members] == ["gpu1", "gpu2"]
    assert [member.name for member in router.pool("llama-3-70b").members] == ["special"]
    assert [member.name for member in router.pool("qwen-7b").members] == ["gpu2"]
    assert [member.name for member in router.pool("gpt-4o").members] == ["rest"]
    assert router.route("llama-3-8b").name == "gpu1"  # the first match still serves it
    assert router.pool("llama-3-8b") is router.pool("llama-2")  # one pool per pattern, not per model


async def test_a_pool_spreads_lines_by_least_in_flight(serve, routers):
    url_a, mock_a, _ = await serve(latency=0.05)
    url_b, mock_b, _ = await serve(latency=0.05)
    router = routers(UpstreamConfig("a", url_a, ("m",)), UpstreamConfig("b", url_b, ("m",)), cache_aware=False)
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(40)], concurrency=10)
    assert all(o.ok for o in outcomes)
    a, b = sum(mock_a.attempts.values()), sum(mock_b.attempts.values())
    assert a + b == 40 and 15 <= a <= 25, (a, b)


async def test_a_slower_member_gets_fewer_lines(serve, routers):
    url_fast, fast, _ = await serve(latency=0.01)
    url_slow, slow, _ = await serve(latency=0.2)
    router = routers(UpstreamConfig("slow", url_slow, ("m",)), UpstreamConfig("fast", url_fast, ("m",)))
    await send_all(router, [chat(f"q{i}") for i in range(100)], concurrency=8)
    assert sum(fast.attempts.values()) > 3 * sum(slow.attempts.values())


async def test_a_failing_member_is_taken_out_and_probed_back_in(serve, routers):
    url_bad, bad, _ = await serve(fail_status=500)
    url_good, _good, _ = await serve()
    router = routers(
        UpstreamConfig("bad", url_bad, ("m",)),
        UpstreamConfig("good", url_good, ("m",)),
        eject_after_failures=3,
        eject_seconds=0.3,
    )
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(60)], concurrency=4)
    assert all(o.ok for o in outcomes)  # every retry found the good member
    failed_before = sum(bad.attempts.values())
    assert 3 <= failed_before <= 3 + 4, failed_before  # the ejection, plus what was in flight then

    await asyncio.sleep(0.35)  # cooldown over: exactly one probe, which fails, and out again for longer
    await send_all(router, [chat(f"p{i}") for i in range(10)], concurrency=1)
    assert sum(bad.attempts.values()) == failed_before + 1

    bad.fail_status = None  # the server recovers
    await asyncio.sleep(0.65)
    await send_all(router, [chat(f"r{i}") for i in range(20)], concurrency=1)
    assert bad.attempts["r0"] == 1  # the probe: first in the pool, free again
    before = sum(bad.attempts.values())
    await send_all(router, [chat(f"s{i}") for i in range(40)], concurrency=8)
    assert sum(bad.attempts.values()) - before >= 10  # back in rotation, taking its share


async def test_a_pool_whose_members_are_all_out_still_tries_rather_than_failing_unasked(serve, routers):
    url_bad, bad, _ = await serve(fail_status=503)
    router = routers(UpstreamConfig("bad", url_bad, ("m",)), eject_after_failures=1, eject_seconds=60, max_attempts=3)
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(3)], concurrency=1)
    assert [o.status_code for o in outcomes] == [503, 503, 503]
    assert sum(bad.attempts.values()) == 9


async def test_a_spent_rate_window_pauses_only_that_upstream(serve, routers):
    url_a, _mock_a, log_a = await serve()
    url_b, _mock_b, _ = await serve()
    router = routers(UpstreamConfig("a", url_a, ("a",)), UpstreamConfig("b", url_b, ("b",)))
    first = asyncio.create_task(router.send("/v1/chat/completions", chat("slow down [429:1] [spent:2]", "a")))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    others = await send_all(router, [chat(f"b{i}", "b") for i in range(20)], concurrency=5)
    assert all(o.ok for o in others) and time.monotonic() - started < 1.5  # the other upstream goes on
    same = await send_all(router, [chat("also for a", "a")], concurrency=1)
    assert (await first).ok and same[0].ok
    times = {(entry["text"], entry["status"]): entry["t"] for entry in logged(log_a)}
    told = times[("slow down [429:1] [spent:2]", 429)]
    assert times[("also for a", 200)] >= told + 1.95  # waited out the pause at the door
    assert times[("slow down [429:1] [spent:2]", 200)] >= told + 1.95


async def test_a_single_429_delays_only_its_own_request(serve, routers):
    url, _mock, log = await serve()
    router = routers(UpstreamConfig("u", url, ("m",)))
    first = asyncio.create_task(router.send("/v1/chat/completions", chat("once [429:1] [wait:1]")))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    others = await send_all(router, [chat(f"q{i}") for i in range(20)], concurrency=5)
    assert all(o.ok for o in others) and time.monotonic() - started < 0.8  # nobody else waits its second
    assert (await first).ok
    times = {(entry["text"], entry["status"]): entry["t"] for entry in logged(log)}
    told = times[("once [429:1] [wait:1]", 429)]
    assert times[("once [429:1] [wait:1]", 200)] >= told + 0.95  # its Retry-After is its own floor


async def use_up_its_429(url: str, text: str) -> None:
    """Send `text` (with a [429:1] directive) to one mock directly, so it has had its one refusal."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/chat/completions", json=chat(text)) as answer,
    ):
        assert answer.status == 429


async def test_in_a_pool_a_429s_retry_goes_to_another_member_without_waiting_its_retry_after(serve, routers):
    url_a, mock_a, _ = await serve()
    url_b, mock_b, _ = await serve()
    text = "refused once [429:1] [wait:5]"
    await use_up_its_429(url_b, text)  # so that only a refuses it
    # Least-loaded picking, so the first attempt goes to a (the first member of an idle pool).
    router = routers(UpstreamConfig("a", url_a, ("m",)), UpstreamConfig("b", url_b, ("m",)), cache_aware=False)
    started = time.monotonic()
    told = await router.send("/v1/chat/completions", chat(text))
    assert told.ok and mock_a.attempts[text] == 1 and mock_b.attempts[text] == 2  # a said 429, b answered
    assert time.monotonic() - started < 2.5  # a's five seconds were a's alone


async def test_while_a_pool_member_is_paused_by_a_spent_window_its_sibling_takes_the_lines(serve, routers):
    url_a, mock_a, _ = await serve()
    url_b, mock_b, _ = await serve()
    text = "first [429:1] [spent:5]"
    await use_up_its_429(url_b, text)  # so that only a refuses it
    router = routers(UpstreamConfig("a", url_a, ("m",)), UpstreamConfig("b", url_b, ("m",)))
    started = time.monotonic()
    told = await router.send("/v1/chat/completions", chat(text))
    assert told.ok and mock_a.attempts[text] == 1 and mock_b.attempts[text] == 2  # the retry went to b
    await send_all(router, [chat(f"q{i}") for i in range(20)], concurrency=4)
    assert sum(mock_a.attempts.values()) == 1 and sum(mock_b.attempts.values()) == 22
    assert time.monotonic() - started < 4  # nobody waited out a's pause


async def test_clustered_429s_pause_the_upstream_and_one_probe_reopens_it(serve, routers):
    url, _mock, log = await serve(latency=0.1)
    router = routers(
        UpstreamConfig("u", url, ("m",), adaptive=False), rate_limit_min_refusals=5, rate_limit_pause_seconds=0.5
    )
    # Ten lines refused at once, as by a spent quota that says nothing else: the upstream pauses.
    outcomes = await send_all(router, [chat(f"q{i} [429:1]") for i in range(10)], concurrency=10)
    assert all(o.ok for o in outcomes)
    entries = logged(log)
    refused_last = max(e["t"] for e in entries if e["status"] == 429)
    retries = sorted(e["t"] for e in entries if e["status"] == 200)
    assert retries[0] >= refused_last + 0.45  # the pause held every retry back
    assert retries[1] - retries[0] >= 0.09  # the probe went alone; the rest followed its answer


async def test_an_upstream_refusing_beyond_its_capacity_is_never_paused(serve, routers):
    url, mock, _ = await serve(latency=0.05, capacity=8, reject_over_capacity=True)
    router = routers(UpstreamConfig("small", url, ("m",), max_concurrency=64, min_concurrency=1), max_attempts=50)
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(200)], concurrency=64)
    assert all(o.ok for o in outcomes)
    throttle = router.pool("m").members[0].door.throttle
    assert mock.rejected > 20  # refused plenty ...
    assert throttle.since == float("-inf") and not throttle.until  # ... and the lower limit was the whole answer


async def test_adaptive_concurrency_backs_off_an_upstream_that_is_overrun(serve, routers):
    url, mock, _ = await serve(latency=0.02, capacity=8, reject_over_capacity=True)
    router = routers(UpstreamConfig("small", url, ("m",), max_concurrency=64, min_concurrency=1), max_attempts=50)
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(400)], concurrency=64)
    assert all(o.ok for o in outcomes)
    member = router.pool("m").members[0]
    assert member.aimd.current <= 16, member.aimd
    assert mock.rejected < 400  # without backing off, each line would be refused several times


async def test_errors_resets_and_timeouts_leave_the_window_alone(serve, routers):
    # A 500, a reset or a hang is one request's misfortune: the window stays open for everyone else.
    url, _mock, _ = await serve(latency=0.05, chaos={"500": 0.2, "reset": 0.1, "hang": 0.05}, seed=3)
    router = routers(UpstreamConfig("u", url, ("m",), max_concurrency=32), request_timeout_seconds=0.2)
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(200)], concurrency=32)
    assert all(o.ok for o in outcomes)
    assert router.pool("m").members[0].aimd.current == 32


async def test_without_adaptation_the_cap_alone_holds(serve, routers):
    url, mock, _ = await serve(latency=0.02)
    router = routers(UpstreamConfig("u", url, ("m",), max_concurrency=5, adaptive=False))
    await send_all(router, [chat(f"q{i}") for i in range(60)], concurrency=30)
    assert mock.peak == 5


async def test_model_limits_cap_a_model_across_its_pool(serve, routers):
    url_a, mock_a, _ = await serve(latency=0.03)
    url_b, mock_b, _ = await serve(latency=0.03)
    router = routers(
        UpstreamConfig("a", url_a, ("m*",)),
        UpstreamConfig("b", url_b, ("m*",)),
        limits=(ModelLimits("m-small", max_concurrency=3),),
        cache_aware=False,  # least-loaded spreads the three evenly, so the two peaks add up to the cap
    )
    await send_all(router, [chat(f"q{i}", "m-small") for i in range(30)], concurrency=20)
    assert mock_a.peak + mock_b.peak <= 3 + 1 and mock_a.in_flight == 0
    assert router.pool("m-small") is not router.pool("m-big")  # only the limited model has its own door
    await send_all(router, [chat(f"r{i}", "m-big") for i in range(30)], concurrency=20)
    assert mock_a.peak + mock_b.peak >= 10


async def test_model_tokens_per_minute_settle_with_usage(serve, routers):
    url, _mock, _ = await serve()
    router = routers(UpstreamConfig("u", url, ("m",)), limits=(ModelLimits("m", tpm=600),))
    door = router.pool("m").model
    # Each estimate is 1 + max_tokens 100 = 101 tokens; the mock's usage says 2 × 1 word + 1 = 3.
    outcomes = await send_all(router, [{**chat("x"), "max_tokens": 100} for _ in range(20)], concurrency=1)
    assert all(o.ok for o in outcomes)
    assert door._tokens.level > 600 - 20 * 3 - 5  # charged what was used, not what was estimated


class PlainAttempt:
    """An upstream kind whose attempt is a plain coroutine (no HTTP, no rate-limit hints): it passes the doors too."""

    def __init__(self, config, settings):
        self.name = config.name
        self.bodies: list[dict] = []

    async def attempt(self, endpoint, body, payload):
        self.bodies.append(body)
        return Outcome(status_code=200, body={"echo": body["messages"][0]["content"]}), None

    async def close(self):
        pass


async def test_a_kind_with_a_plain_attempt_passes_the_door(monkeypatch, routers):
    monkeypatch.setitem(KINDS, "whole", PlainAttempt)
    router = routers(UpstreamConfig("w", "unused://", ("m",), kind="whole", max_concurrency=2, adaptive=False))
    outcomes = await send_all(router, [chat(f"q{i}") for i in range(10)], concurrency=5)
    assert [o.body["echo"] for o in outcomes] == [f"q{i}" for i in range(10)]
    assert len(router.route("m").bodies) == 10
    assert router.pool("m").members[0].door.in_flight == 0


async def test_a_stream_holds_its_place_at_the_door_until_its_last_event(serve, routers):
    url, _mock, log = await serve()
    router = routers(UpstreamConfig("u", url, ("m",), max_concurrency=1, adaptive=False))
    first = await router.stream("/v1/chat/completions", chat("one two three"))
    second = asyncio.create_task(router.send("/v1/chat/completions", chat("after")))
    await asyncio.sleep(0.2)
    assert not second.done() and len(logged(log)) == 1  # the open stream fills the only slot
    events = b"".join([event async for event in first.events])
    assert events.endswith(b"data: [DONE]\n\n")
    assert (await second).ok and len(logged(log)) == 2


async def test_a_stream_refused_before_its_first_event_gives_its_slot_back(serve, routers):
    url, _, _ = await serve(fail_status=400)
    router = routers(UpstreamConfig("u", url, ("m",), max_concurrency=1, adaptive=False))
    refused = await router.stream("/v1/chat/completions", chat("x"))
    assert isinstance(refused, Outcome) and refused.status_code == 400
    assert (await asyncio.wait_for(router.send("/v1/chat/completions", chat("y")), 5)).status_code == 400


async def test_retries_are_counted_under_the_member_that_failed(serve, routers):
    down_url, _, down_log = await serve(fail_status=500)
    up_url, _, up_log = await serve()
    router = routers(
        UpstreamConfig("retry-down", down_url, ("m",)), UpstreamConfig("retry-up", up_url, ("m",)), eject_seconds=60
    )
    outcomes = await send_all(router, [chat(f"r {i}") for i in range(20)], concurrency=4)
    assert all(outcome.ok for outcome in outcomes)
    refused = [entry for entry in logged(down_log) if entry["status"] == 500]
    assert refused and len(logged(up_log)) == 20

    def retries(upstream: str) -> float:
        sample = {"upstream": upstream, "reason": "500"}
        return REGISTRY.get_sample_value("batchgate_upstream_retries_total", sample) or 0.0

    assert (retries("retry-down"), retries("retry-up")) == (len(refused), 0)
