"""Showing a running batch: a live rich bar on a terminal, a plain line every few seconds otherwise.

`Pace` is the arithmetic (lines per second, time left) from the counts seen so far; the views only draw.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

PLAIN_EVERY_SECONDS = 5.0
PACE_WINDOW_SECONDS = 30.0  # the rate is measured over this much recent time, so it follows changes


@dataclass(frozen=True)
class Counts:
    status: str
    done: int  # lines with a result, good or bad
    failed: int
    total: int
    input_tokens: int = 0
    cached_tokens: int = 0  # the part of input_tokens an upstream's prefix cache served

    @classmethod
    def of(cls, batch: dict[str, Any]) -> Counts:
        counts = batch.get("request_counts") or {}
        completed, failed = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
        usage = batch.get("usage") or {}
        details = usage.get("input_tokens_details") or {}
        return cls(
            str(batch.get("status")),
            completed + failed,
            failed,
            int(counts.get("total") or 0),
            int(usage.get("input_tokens") or 0),
            int(details.get("cached_tokens") or 0),
        )

    @property
    def cache_hit_rate(self) -> float | None:
        """Cached ÷ input tokens; None until an upstream has reported a cached token."""
        return self.cached_tokens / self.input_tokens if self.cached_tokens and self.input_tokens else None


class Pace:
    """Lines per second over a recent window, and the seconds left at that rate."""

    def __init__(self, window: float = PACE_WINDOW_SECONDS):
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def observe(self, at: float, done: int) -> None:
        self._samples.append((at, done))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (first_at, first_done), (last_at, last_done) = self._samples[0], self._samples[-1]
        return (last_done - first_done) / (last_at - first_at) if last_at > first_at else None

    def seconds_left(self, counts: Counts) -> float | None:
        rate = self.rate
        return None if not rate or counts.total <= 0 else max(0, counts.total - counts.done) / rate


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}"


def hit_rate_text(counts: Counts) -> str:
    """ "63% cached" (the cache hit rate of input tokens), or nothing while no upstream has reported any."""
    rate = counts.cache_hit_rate
    return "" if rate is None else f"{rate:.0%} cached"


def describe(batch_id: str, counts: Counts, pace: Pace) -> str:
    """The plain progress line."""
    cache = hit_rate_text(counts)
    return (
        f"{batch_id} {counts.status}: {counts.done}/{counts.total} done, {counts.failed} failed, "
        f"{rate_text(pace.rate)} lines/s, ETA {clock(pace.seconds_left(counts))}" + (f", {cache}" if cache else "")
    )


class View(Protocol):
    def start(self) -> None: ...
    def show(self, counts: Counts) -> None: ...
    def stop(self) -> None: ...


class LiveBar:
    """A rich progress bar on stderr, redrawn in place."""

    def __init__(self, batch_id: str, console: Console):
        self.batch_id = batch_id
        self.pace = Pace()
        # Short enough for an 80-column terminal to keep it on one line (the batch id is said above it).
        self.progress = Progress(
            TextColumn("[cyan]{task.fields[status]:<11}"),
            BarColumn(bar_width=30),
            TextColumn("{task.completed}/{task.fields[of]} done"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]} lines/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("[green]{task.fields[cache]}"),
            console=console,
            auto_refresh=False,
        )
        self.task: TaskID = self.progress.add_task(
            "batch", total=None, of="?", failed=0, rate="-", eta="--:--", status="…", cache=""
        )

    def start(self) -> None:
        self.progress.start()

    def show(self, counts: Counts) -> None:
        self.pace.observe(time.monotonic(), counts.done)
        self.progress.update(
            self.task,
            completed=counts.done,
            total=counts.total or None,
            of=counts.total or "?",  # no total until validation has counted the lines
            failed=counts.failed,
            rate=rate_text(self.pace.rate),
            eta=clock(self.pace.seconds_left(counts)),
            status=counts.status,
            cache=hit_rate_text(counts),
        )
        self.progress.refresh()

    def stop(self) -> None:
        self.progress.stop()


class PlainLines:
    """A progress line on stderr when something changed and a few seconds have passed, and at every status change."""

    def __init__(self, batch_id: str, every: float = PLAIN_EVERY_SECONDS):
        self.batch_id = batch_id
        self.every = every
        self.pace = Pace()
        self._last: tuple[float, Counts] | None = None

    def start(self) -> None:
        pass

    def show(self, counts: Counts) -> None:
        now = time.monotonic()
        self.pace.observe(now, counts.done)
        last = self._last
        if last is None or counts.status != last[1].status or (counts != last[1] and now - last[0] >= self.every):
            print(describe(self.batch_id, counts, self.pace), file=sys.stderr, flush=True)
            self._last = (now, counts)

    def stop(self) -> None:
        pass


def view_for(batch_id: str) -> View:
    console = Console(stderr=True)
    return LiveBar(batch_id, console) if console.is_terminal else PlainLines(batch_id)
