"""The in_progress stage, one shard at a time: a sliding window of requests in flight, never a chunked gather.

Lines whose result is already recorded are skipped (invariant I3), so a resumed shard
picks up exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import nullcontext
from functools import partial
from typing import NamedTuple

from batchgate import ids, metrics
from batchgate.domain.dispatch_order import CopyLine
from batchgate.domain.duplicates import duplicate_key, wants_deduplication
from batchgate.domain.fairness import Flow
from batchgate.domain.group_turns import GroupTurns
from batchgate.domain.lines import RequestLine, is_blank, parse_line
from batchgate.domain.prefix import prefix_key
from batchgate.domain.records import BatchRecord, Usage
from batchgate.domain.results import Outcome, result_line, usage_of
from batchgate.errors import Abandoned
from batchgate.store import ResultRow, ShardLease
from batchgate.worker.context import WorkerContext
from batchgate.worker.duplicates import Flights
from batchgate.worker.inputs import dispatch_copy_lines, located_input_chunks
from batchgate.worker.lane import Lane
from batchgate.worker.per_batch import SharedTurns
from batchgate.worker.stop import StopReason, StopSignal
from batchgate.worker.writer import ResultWriter

log = logging.getLogger("batchgate.worker")


def _nothing() -> None:
    pass


class ShardEnding(NamedTuple):
    """What a shard tells its worker as its last lines go out (worker.py hands the lane on by them):
    `nearly_sent` once a window of the lane's size is left to send (at the latest with the last line),
    time for the next shard to get ready to take the lane's slots as they free up; then `sent_all` once
    the last line is on its way, while answers are awaited."""

    nearly_sent: Callable[[], None] = _nothing
    sent_all: Callable[[], None] = _nothing


UNHEARD = ShardEnding()  # a shard whose worker hands nothing on (tests, a lone run)


NO_USAGE = Usage()
# Lines a shard reads ahead, taking turns, to find one whose group has none out.
LOOK_AHEAD = 1_024


async def execute(
    ctx: WorkerContext,
    batch: BatchRecord,
    stop: StopSignal,
    shard: ShardLease,
    lane: Lane,
    ending: ShardEnding = UNHEARD,
) -> None:
    """Send every unanswered line of one shard of `batch` through `lane`; return when all are recorded
    or `stop` fires, telling `ending` as the last lines go out.

    Each slot of the lane is a sender that goes from one line to the next: an answer's slot sends the
    next line in the same turn of the event loop, and the answer becomes a result row in the next
    turn, so the upstream never waits for rows to be made (docs/benchmarks.md has the measurements).
    """
    flow = Flow(batch.scope.tenant, batch.id)  # its fair share at busy upstreams
    settings = ctx.execution
    writer = ResultWriter(ctx.store, shard, settings.commit_interval_seconds)
    answers = _Answers(writer, batch.endpoint)
    lines = _Unsent(ctx, batch, shard, ending, lane.size)
    senders: set[asyncio.Task] = set()
    flights: Flights | None = None  # set while the batch asks for repeats to be sent once

    def may_send() -> bool:
        return stop.reason is None and not writer.failed and ctx.clock() < stop.lease_until

    async def sender() -> None:
        try:
            while may_send() and (taken := await lines.take(may_send)) is not None:
                request, answered = taken
                try:
                    if flights is None:
                        outcome, copied = await _outcome(ctx, batch.endpoint, request, stop, flow), False
                    else:
                        outcome, copied = await _answer_once(flights, ctx, batch.endpoint, request, stop, flow)
                finally:
                    if answered is not None:
                        answered()  # its group's next lines may go: the upstream has its prefix
                if outcome is not None:
                    answers.put(request, outcome, copied)
                    if not outcome.ok and log.isEnabledFor(logging.DEBUG):
                        _log_failed(ctx, request, outcome)
                await writer.room()
        finally:
            lane.give_back()

    deduplicating = ctx.duplicates.of(batch.id) if wants_deduplication(batch.metadata) else nullcontext()
    try:
        async with writer:
            try:
                with lane.joined(stop.wake), deduplicating as flights:
                    await lines.prime()
                    while not lines.ended and stop.reason is None and not writer.failed:
                        if lane.full() or not may_send():
                            await stop.wait()
                            continue
                        lane.take()
                        task = asyncio.create_task(sender())
                        senders.add(task)
                        task.add_done_callback(senders.discard)
                    if lines.failure is not None:
                        raise lines.failure
                    await _drain(senders, stop, settings.cancel_grace_seconds)
            finally:
                answers.record()  # the answers already in, whatever ends the run
    finally:
        for task in senders:
            task.cancel()
        await lines.close()


class _Unsent:
    """The shard's lines that have no recorded result yet (I3), parsed, taken by the senders one at a time.

    The first line is read ahead (prime), while the lines of the shard before this one in the lane
    are still out: its senders then start the moment those answers free their slots. A planned batch's
    shard reads its dispatch copy (docs/caching.md): positions there, line numbers in the results.

    With cache_aware, lines of a prefix group wait for their group so they find the upstream's cache warm.
    Behind a shared prefix cache (vLLM, SGLang) the first line of each group is a leader: the lines of its
    group after it wait for its answer, at most cache_warm_wait_seconds. Behind a cache per slot (the
    built-in llama.cpp model) the groups take turns (domain/group_turns.py): a group has one line out, counted
    over the batch's shards on this worker, while another group's line, read ahead, can go instead.
    """

    def __init__(self, ctx: WorkerContext, batch: BatchRecord, shard: ShardLease, ending: ShardEnding, lead: int):
        settings = ctx.execution
        self._endpoint, self._max_line_bytes, self._ending = batch.endpoint, settings.max_line_bytes, ending
        self._near_end: float = shard.last_line - lead  # past this line the end is near (inf once told)
        # Prefix keys only for a batch with groups: one of single lines pays nothing per line for them.
        self._grouped, self._warm_wait = settings.cache_aware and batch.grouped, settings.cache_warm_wait_seconds
        self._slots = ctx.router.prefix_cache(batch.endpoint, batch.model).slots if self._grouped else None
        self._held = contextlib.ExitStack()  # what this shard shares with the batch's others here, until close
        self._taking_turns: _TakingTurns | None = None
        if self._slots:
            shared = self._held.enter_context(ctx.turns.of(batch.id))
            self._taking_turns = _TakingTurns(shared, GroupTurns[_Line](shared.out))
        self._read_all = False  # taking turns: the last line is read (the rest wait their turn)
        self._store, self._batch_id = ctx.store, batch.id
        self._last = shard.last_line
        self._chunks: AsyncGenerator[list, None]
        if batch.dispatch_key is None:
            self._chunks, self._next = located_input_chunks(ctx, batch, shard), self._next_in_file
        else:
            self._chunks, self._next = dispatch_copy_lines(ctx, batch, shard), self._next_in_copy
        self._at_hand: Iterator = iter(())  # the rest of the chunk read last
        self._done = aiter(ctx.store.done_lines(batch.id, shard.first_line, shard.last_line))
        self._next_done: int | None = 0  # the next line with a result; 0 before the first is read
        self._done_at_hand: set[int] = set()  # in a copy's chunk, the lines with a result
        self._position = shard.first_line - 1  # in a copy, where the last line read was
        self._ahead: _Line | None = None
        self._group: object = None  # the group of the last line handed out, and its leader's answer
        self._leader: asyncio.Event | None = None
        self._lock = asyncio.Lock()  # a read of the file may pause a taker: the next one waits its turn
        self.ended = False
        self.failure: Exception | None = None  # reading failed: the run fails with it

    async def prime(self) -> None:
        async with self._lock:
            if self._ahead is None and not self.ended:
                self._ahead = await self._read()

    async def take(self, may_send: Callable[[], bool]) -> tuple[RequestLine, Callable[[], None] | None] | None:
        """The next line to send, and what to call once it is answered if its group waits for it; None when
        there is none (then `ended`), or when `may_send()` turned false while the line was read (a stop, a
        lease that may have lapsed): the line is kept for later."""
        async with self._lock:
            if self.ended:
                return None
            if self._taking_turns is not None:
                return await self._take_turn(self._taking_turns, may_send)
            taken, self._ahead = self._ahead, None
            if taken is None:
                taken = await self._read()
            if taken is not None:
                await self._warm(taken)
            if taken is not None and not may_send():
                self._ahead = taken
                return None
            if taken is not None and taken.position > self._near_end:
                self._near()
            if taken is None or taken.position >= self._last:
                self._end()  # known at once at the last line, so the next shard starts while its answer is out
            return None if taken is None else (taken.request, self._lead(taken))

    async def _take_turn(
        self, taking: _TakingTurns, may_send: Callable[[], bool]
    ) -> tuple[RequestLine, Callable[[], None]] | None:
        """The first line read whose group has none out, reading ahead up to LOOK_AHEAD lines for one.
        With none, a line of a busy group goes only while fewer of the batch's lines are out than the
        upstream has slots (a slot would idle); else the take waits for an answer to free a group."""
        shared, turns = taking
        while True:
            taken = turns.take_free()
            while taken is None and not self._read_all and turns.waiting < LOOK_AHEAD:
                line, self._ahead = self._ahead or await self._read(), None
                if line is None or line.position >= self._last:
                    self._read_all = True
                if line is not None:
                    turns.put(line.position if line.group is None else line.group, line)  # no group: its own
                    taken = turns.take_free()
            if taken is None and shared.out.total < (self._slots or 1):
                taken = turns.take_any()
            if taken is not None or not turns.waiting:
                break
            shared.line_ended.clear()
            await shared.line_ended.wait()  # some line is out (total >= slots >= 1): its answer ends the wait
        if taken is None:
            self._end()
            return None
        group, line = taken
        if not may_send():
            turns.give_back(group, line)
            return None
        if line.position > self._near_end:
            self._near()
        if self._read_all and not turns.waiting:
            self._end()
        return line.request, partial(shared.end, group)

    async def _warm(self, taken: _Line) -> None:
        """A sibling of a leader still out waits for its answer (the cache entry), a bounded time."""
        leader = self._leader
        if taken.group is not None and taken.group == self._group and leader is not None and not leader.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leader.wait(), self._warm_wait)

    def _lead(self, taken: _Line) -> Callable[[], None] | None:
        if taken.group is None or taken.group == self._group:
            return None
        self._group, self._leader = taken.group, asyncio.Event()
        return self._leader.set

    async def _read(self) -> _Line | None:
        """The next unanswered line. A chunk's lines are taken one by one without an await: the file is
        read (and the results read back) only when they run out."""
        try:
            while True:
                if (found := await self._next()) is not None:
                    return found
                chunk = await anext(self._chunks, None)
                if chunk is None:
                    return None
                if self._next == self._next_in_copy:
                    self._done_at_hand = await self._store.done_among(self._batch_id, [c.line for c in chunk])
                self._at_hand = iter(chunk)
        except Exception as exc:
            self.failure = exc
        return None

    async def _next_in_file(self) -> _Line | None:
        for line, _, raw in self._at_hand:
            if raw is not None and is_blank(raw):
                continue
            if self._next_done is not None and self._next_done <= line and await self._answered(line):
                continue
            assert raw is not None  # validation refused any batch with a line over the size limit
            request = parse_line(raw, line, self._endpoint, self._max_line_bytes)
            return _Line(line, request, prefix_key(self._endpoint, request.body) if self._grouped else None)
        return None

    async def _next_in_copy(self) -> _Line | None:
        copied: CopyLine
        for copied in self._at_hand:
            self._position += 1
            if copied.line not in self._done_at_hand:
                request = parse_line(copied.raw, copied.line, self._endpoint, self._max_line_bytes)
                return _Line(self._position, request, copied.group if self._grouped else None)
        return None

    async def _answered(self, line: int) -> bool:
        """Whether `line` has a recorded result: the lines with one are read back in order, beside the file."""
        if self._next_done == 0:
            self._next_done = await anext(self._done, None)
        while self._next_done is not None and self._next_done < line:
            self._next_done = await anext(self._done, None)
        return self._next_done == line

    def _near(self) -> None:
        if self._near_end != math.inf:
            self._near_end = math.inf  # told once
            self._ending.nearly_sent()

    def _end(self) -> None:
        self.ended = True
        if self.failure is None:
            self._near()
            self._ending.sent_all()

    async def close(self) -> None:
        self._held.close()
        await self._chunks.aclose()


class _TakingTurns(NamedTuple):
    """Behind a cache per slot: the batch's lines out on this worker, and this shard's lines waiting their turn."""

    shared: SharedTurns
    turns: GroupTurns[_Line]


class _Line(NamedTuple):
    position: int  # where the shard counts it: its line in the file, or its place in the dispatch copy
    request: RequestLine
    group: object  # its prefix group (None: it leads nothing and waits for nothing)


async def _outcome(
    ctx: WorkerContext, endpoint: str, request: RequestLine, stop: StopSignal, flow: Flow
) -> Outcome | None:
    """The line's outcome; None if it was abandoned (no result: it stays unanswered for whoever carries on)."""
    try:
        return await ctx.router.send(endpoint, request.body, lambda: stop.may_retry(ctx.clock), flow)
    except Abandoned:
        return None
    except Exception as exc:  # a bug must cost one line, not the run (I5)
        log.exception("line %d of a %s batch failed inside batchgate", request.line, endpoint)
        return Outcome(error_code="internal_error", error_message=f"batchgate failed on this line: {exc!r}")


async def _answer_once(
    flights: Flights, ctx: WorkerContext, endpoint: str, request: RequestLine, stop: StopSignal, flow: Flow
) -> tuple[Outcome | None, bool]:
    """The line's outcome, shared with the byte-identical repeats of a repeatable body; True for a copy."""

    async def send() -> Outcome | None:  # a repeat that inherits the send of a stopped shard's line checks its own
        may_send = stop.reason is None and ctx.clock() < stop.lease_until
        return await _outcome(ctx, endpoint, request, stop, flow) if may_send else None

    key = duplicate_key(request.body)
    return (await send(), False) if key is None else await flights.outcome(key, send)


def _log_failed(ctx: WorkerContext, request: RequestLine, outcome: Outcome) -> None:
    upstream = ctx.router.route(str(request.body.get("model")))  # its pool's first member
    reason = outcome.error_code or outcome.status_code
    log.debug("line %d failed: %s", request.line, reason, extra={"upstream": upstream and upstream.name})


class _Answers:
    """Answers waiting to become result rows, made in the turn of the event loop after they arrived."""

    def __init__(self, writer: ResultWriter, endpoint: str):
        self._writer = writer
        self._waiting: list[tuple[RequestLine, Outcome, bool]] = []
        self._succeeded, self._failed = metrics.lines_finished(endpoint)
        self._saved = metrics.DUPLICATES_SAVED.labels(endpoint)

    def put(self, request: RequestLine, outcome: Outcome, copied: bool = False) -> None:
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self.record)
        self._waiting.append((request, outcome, copied))

    def record(self) -> None:
        waiting, self._waiting = self._waiting, []
        succeeded = saved = 0
        for request, outcome, copied in waiting:
            ok = outcome.ok
            row = ResultRow(request.line, ok, result_line(ids.request_id(), request.custom_id, outcome))
            spent = usage_of(outcome.body) if ok and not copied else NO_USAGE  # a copy cost nothing
            self._writer.add(row, spent, copied)
            succeeded += ok
            saved += copied
        # Counted once per turn, not per line: each count takes the metric's lock.
        if succeeded:
            self._succeeded.inc(succeeded)
        if failed := len(waiting) - succeeded:
            self._failed.inc(failed)
        if saved:
            self._saved.inc(saved)


async def _drain(inflight: set[asyncio.Task], stop: StopSignal, grace: float) -> None:
    """Wait for in-flight lines: all of them normally, `grace` seconds after a cancel, none after expiry."""
    while inflight and stop.reason is None:
        await stop.wait()
    if stop.reason is StopReason.CANCELLED and inflight:
        await asyncio.wait(set(inflight), timeout=grace)
    for task in list(inflight):
        task.cancel()
    if inflight:
        await asyncio.wait(set(inflight))
