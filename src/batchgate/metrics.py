"""Prometheus metrics of one process, served by `GET /metrics` (the API) and `--metrics-port` (a worker).

Counters and histograms are module-level and written where things happen; hot paths keep the
labelled child they write to (`.labels()` once, not per call). Gauges that describe a state (requests
in flight at an upstream, the adaptive limit, batches by status) are read when scraped, so keeping
them costs nothing between scrapes; so are the token counters, summed in plain integers by each
upstream as its answers arrive (an addition per answer, not a locked counter).

Each process counts what it did itself: with several workers, sum the counters over processes. The
batches-by-status gauge is read from the shared database, so every process reports the same
numbers: take one process's value (max), not the sum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from batchgate.store import Store
    from batchgate.upstream.pool import Member

# The classic text format, which every Prometheus reads (the names here need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = CollectorRegistry(auto_describe=True)
disable_created_metrics()  # a `_created` gauge beside every counter doubles the text for no use here

# An LLM answer takes from milliseconds (embeddings, a cache) to minutes (long generations).
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A grouped commit of results takes milliseconds; seconds mean a struggling database.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

LINES_FINISHED = Counter(
    "batchgate_lines_finished",
    "Batch lines finished, by endpoint and outcome: succeeded (a 2xx answer), failed (any other answer or error), "
    "or cancelled / expired (ended unanswered by the batch's cancel or expiry).",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "batchgate_upstream_request_duration_seconds",
    "Time from sending one attempt to an upstream to its answer (or its failure), by upstream.",
    ["upstream"],
    buckets=UPSTREAM_BUCKETS,
    registry=REGISTRY,
)
RETRIES = Counter(
    "batchgate_upstream_retries",
    "Attempts retried, by the upstream that failed and the reason: the HTTP status (429, 500, ...) "
    "or the error (timeout, upstream_unreachable, ...).",
    ["upstream", "reason"],
    registry=REGISTRY,
)
DUPLICATES_SAVED = Counter(
    "batchgate_duplicates_saved",
    "Batch lines answered by a byte-identical repeat's answer instead of being sent (docs/caching.md), by endpoint.",
    ["endpoint"],
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "batchgate_rate_limit_waits",
    "Requests held back at a door by a rate window (rpm, tpm) or a rate-limit pause, by door.",
    ["door"],
    registry=REGISTRY,
)
RESULT_COMMIT_LATENCY = Histogram(
    "batchgate_result_commit_duration_seconds",
    "Time one grouped commit of result rows to the database takes.",
    buckets=COMMIT_BUCKETS,
    registry=REGISTRY,
)
UPLOADS = Counter("batchgate_uploads", "Files uploaded and stored.", registry=REGISTRY)
UPLOAD_BYTES = Counter("batchgate_upload_bytes", "Bytes of the files uploaded and stored.", registry=REGISTRY)


def lines_finished(endpoint: str) -> tuple[Counter, Counter]:
    """The (succeeded, failed) children for one endpoint, to keep for a run's lines."""
    return LINES_FINISHED.labels(endpoint, "succeeded"), LINES_FINISHED.labels(endpoint, "failed")


_retry_children: dict[tuple[str, str], Counter] = {}


def count_retry(upstream: str, reason: str) -> None:
    child = _retry_children.get((upstream, reason))
    if child is None:
        child = _retry_children[(upstream, reason)] = RETRIES.labels(upstream, reason)
    child.inc()


class _Live(Collector):
    """What is read at scrape time: each upstream's doors and token counts, and the batches by status of the last
    refresh."""

    def __init__(self) -> None:
        self.members: Callable[[], Iterable[Member]] = tuple
        self.batch_counts: dict[str, int] | None = None

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "batchgate_upstream_in_flight", "Requests sent to an upstream and not answered yet.", labels=["upstream"]
        )
        queued = GaugeMetricFamily(
            "batchgate_upstream_queued", "Requests waiting at an upstream's doors for their turn.", labels=["upstream"]
        )
        limit = GaugeMetricFamily(
            "batchgate_upstream_concurrency_limit",
            "Requests an upstream may have in flight now: its adaptive (AIMD) limit, or its fixed max_concurrency.",
            labels=["upstream"],
        )
        given = CounterMetricFamily(
            "batchgate_input_tokens",
            "Input (prompt) tokens of the answers upstreams gave, by model and upstream, as their usage reports them.",
            labels=["model", "upstream"],
        )
        cached = CounterMetricFamily(
            "batchgate_cached_input_tokens",
            "The part of batchgate_input_tokens an upstream's prefix cache served (usage cached_tokens), by model "
            "and upstream: divided by batchgate_input_tokens it is the cache hit rate.",
            labels=["model", "upstream"],
        )
        for member in self.members():
            in_flight.add_metric([member.name], member.door.in_flight)
            queued.add_metric([member.name], max(0, member.load - member.door.in_flight))
            current = member.concurrency_limit
            if current is not None:
                limit.add_metric([member.name], current)
            for model, (tokens, from_cache) in list(member.input_tokens.items()):
                given.add_metric([model, member.name], tokens)
                cached.add_metric([model, member.name], from_cache)
        yield from (in_flight, queued, limit, given, cached)
        if self.batch_counts is not None:
            batches = GaugeMetricFamily(
                "batchgate_batches",
                "Batches in the database, by status (the same in every process).",
                labels=["status"],
            )
            for status, count in sorted(self.batch_counts.items()):
                batches.add_metric([status], count)
            yield batches

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time: nothing to check at registration


_LIVE = _Live()
REGISTRY.register(_LIVE)


def watch_upstreams(members: Callable[[], Iterable[Member]]) -> None:
    """Report these upstreams (the process's router) from now on."""
    _LIVE.members = members


async def exposition(store: Store | None) -> bytes:
    """The text a scrape gets; the batch counts are read from `store` first (one indexed query)."""
    if store is not None:
        _LIVE.batch_counts = await store.count_batches_by_status()
    return generate_latest(REGISTRY)
