"""The rules over a whole batch input file, for every pass that judges one: the upload's check, the
validating stage, and `check_file` (a file checked offline).

Each line goes through domain/lines.py:check_line (or good_requests, the same rule over a chunk of
good lines). Over the whole file: every request names one endpoint, there are at most `max_lines` of
them and at least one, and no custom_id repeats. Repeats are found on disk by the caller (a scratch
SQLite set, batchgate/scratch_ids.py), who hands them back to FileCheck.repeated(), so every pass
words and orders them alike.

The upload's check does not know the batch yet: it learns the endpoint from the first request and
stops at the first error. A clean file gets a FileSummary that lets a batch for that endpoint skip its
own pass; any other file is read again by its batch, which reports every error with its line number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import NamedTuple, Protocol

from batchgate.domain.lines import ENDPOINTS, GoodRequests, LineError, Request, check_line, good_requests
from batchgate.domain.nesting import DEPTH_CEILING
from batchgate.domain.shards import ShardCutter
from batchgate.domain.splitting import Block, LineSplitter, Located


class LimitSettings(Protocol):
    """The settings a LineLimits is read from (the API's and the worker's settings both have them)."""

    @property
    def max_lines(self) -> int: ...
    @property
    def max_line_bytes(self) -> int: ...
    @property
    def shard_lines(self) -> int: ...
    @property
    def max_json_depth(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LineLimits:
    """The settings a file is checked under: a summary made under other ones is not used."""

    max_lines: int
    max_line_bytes: int
    shard_lines: int
    # Not compared: a line within any depth limit a setting may choose stays sendable, so a summary made
    # under another limit still holds. Summaries read back from the store do not record it: the ceiling.
    max_json_depth: int = field(default=DEPTH_CEILING, compare=False)

    @classmethod
    def of(cls, settings: LimitSettings) -> LineLimits:
        return cls(settings.max_lines, settings.max_line_bytes, settings.shard_lines, settings.max_json_depth)


@dataclass(frozen=True)
class FileSummary:
    """A clean batch input file: every line a good request for `endpoint`, no custom_id twice."""

    endpoint: str
    requests: int
    last_line: int  # the line of the last request
    model: str | None  # the model every line names; None for a mix
    grains: bytes  # where shards may start (ShardCutter.grains), cut by shard_lines
    limits: LineLimits

    def fits(self, endpoint: str, limits: LineLimits) -> bool:
        return endpoint == self.endpoint and limits == self.limits


class Requests(NamedTuple):
    """The good requests of the lines fed at once: their custom_ids and their line numbers, in order."""

    custom_ids: list[str]
    lines: list[int]


def duplicate_error(custom_id: str, first: int, line: int) -> LineError:
    return LineError(
        line,
        "duplicate_custom_id",
        f"Line {line}: custom_id {custom_id!r} was already used on line {first}.",
        "custom_id",
    )


def _joined(first: Requests, then: Requests) -> Requests:
    if not first.lines:
        return then
    return Requests(first.custom_ids + then.custom_ids, first.lines + then.lines)


_line_of = itemgetter(0)  # Located.line: a tuple index costs less than the named field, once per line
_raw_of = itemgetter(2)  # Located.raw


class FileCheck:
    """Fed a file's located lines in order, applies check_line to each and the file-level rules to all.

    `endpoint` is the batch's, or None for an upload's check (the first request names it). Errors go to
    `on_error`; without one, the check keeps the earliest error alone and stops feeding after the
    first (`stopped`), as an upload's check only wants to know whether the file is clean. A file with
    more than max_lines requests stops the check either way. `cutter` (if given) is fed each request's
    line and offset to cut shards.
    """

    def __init__(
        self,
        limits: LineLimits,
        endpoint: str | None = None,
        on_error: Callable[[LineError], None] | None = None,
        cutter: ShardCutter | None = None,
        keep_models: int = 2,
    ):
        self.limits = limits
        self.endpoint = endpoint
        self.requests = 0  # non-blank lines, good or bad
        self.error: LineError | None = None  # the earliest error, when the check keeps it (no on_error)
        self.errors = 0
        self.stopped = False
        # At most keep_models: the server needs two, to know there is more than one; a person may want more.
        self.models: set[str] = set()
        self._keep_models = keep_models
        self._on_error = on_error
        self._last_model: str | None = None
        self._last_line = 0
        self._cutter = cutter if cutter is not None else ShardCutter(limits.shard_lines)

    @property
    def clean(self) -> bool:
        return self.errors == 0

    def feed(self, located: Sequence[Located]) -> Requests:
        """Check lines in order: the good requests among them, for the caller's repeat check.

        A chunk whose every line is a good request (the usual one) is judged at once by good_requests;
        any other goes line by line through check_line, for its errors.
        """
        head, at = Requests([], []), 0
        while self.endpoint is None and at < len(located):  # line by line until a request names the endpoint
            head = _joined(head, self._feed_lines(located[at : at + 1]))
            at += 1
        rest = located[at:]
        if self.stopped or not rest:
            return head
        return _joined(head, self._feed_runs(rest))

    def feed_block(self, lines: Block | list[Located]) -> Requests:
        """feed() for what LineSplitter.feed_block gives. A Block's leading run of good requests is taken
        whole: no Located per line, line numbers and offsets worked out only where a shard may start.
        The rest of it (a bad line on) goes through feed(), line by line as far as it must.
        """
        if isinstance(lines, list):
            return self.feed(lines)
        if self.endpoint is None or self.stopped:
            return self.feed(lines.located())
        limits, raws = self.limits, lines.raws
        # Every raw is within max_line_bytes without its line break ("\r\n" at most): the splitter saw to it.
        good = good_requests(raws, self.endpoint, limits.max_line_bytes + 2, limits.max_json_depth)
        taken = len(good.custom_ids)
        if self.requests + taken > limits.max_lines:  # line by line, to name the line past the limit
            return self.feed(lines.located())
        requests = Requests([], [])
        if taken:
            first = lines.first_line
            self._take_good(good, first + taken - 1)
            self._cutter.add_lines(first, lines.first_offset, raws[:taken])
            requests = Requests(good.custom_ids, list(range(first, first + taken)))
        if taken < len(raws):
            requests = _joined(requests, self.feed(lines.located(taken)))
        return requests

    def _feed_runs(self, located: Sequence[Located]) -> Requests:
        """Runs of good lines judged at once by good_requests, each line that ends a run by check_line."""
        assert self.endpoint is not None
        limits, endpoint = self.limits, self.endpoint
        raws: list[bytes | None] = list(map(_raw_of, located))
        requests, at = Requests([], []), 0
        while at < len(located) and not self.stopped:
            good = good_requests(raws[at:], endpoint, limits.max_line_bytes, limits.max_json_depth)
            run = located[at : at + len(good.custom_ids)]
            if self.requests + len(run) > limits.max_lines:  # line by line, to name the line past the limit
                return _joined(requests, self._feed_lines(located[at:]))
            if run:
                requests = _joined(requests, self._take_run(run, good))
            at += len(run)
            requests = _joined(requests, self._feed_lines(located[at : at + 1]))  # the line that ended the run
            at += 1
        return requests

    def _take_run(self, run: Sequence[Located], good: GoodRequests) -> Requests:
        self._take_good(good, run[-1].line)
        self._cutter.add_run(run)
        return Requests(good.custom_ids, list(map(_line_of, run)))

    def _take_good(self, good: GoodRequests, last_line: int) -> None:
        """Count a run of good requests that ends on `last_line`, and note their models."""
        self.requests += len(good.custom_ids)
        if len(self.models) < self._keep_models:
            self.models.update(good.models)
            while len(self.models) > self._keep_models:
                self.models.pop()
        self._last_model = good.models[-1]
        self._last_line = last_line

    def _feed_lines(self, located: Iterable[Located]) -> Requests:
        """check_line for each line in turn. A plain loop with everything it needs in locals."""
        custom_ids: list[str] = []
        lines: list[int] = []
        if self.stopped:
            return Requests(custom_ids, lines)
        count, endpoint, last_model = self.requests, self.endpoint, self._last_model
        limits = self.limits
        max_lines, max_line_bytes, max_depth = limits.max_lines, limits.max_line_bytes, limits.max_json_depth
        check, add_grain = check_line, self._cutter.add
        for item in located:
            line = item.line
            verdict = check(item.raw, line, endpoint, max_line_bytes, max_depth)
            if verdict is None:
                continue
            count += 1
            if count > max_lines:
                self._fail(
                    LineError(line, "too_many_tasks", f"The file has more than {max_lines} requests (line {line}).")
                )
                self.stopped = True
                break
            if type(verdict) is not Request:
                assert isinstance(verdict, LineError)
                self._fail(verdict)
                if self.stopped:
                    break
                continue
            model = verdict.model
            if endpoint is None:
                endpoint = self.endpoint = verdict.url
            if model != last_model:
                if len(self.models) < self._keep_models:
                    self.models.add(model)
                last_model = model
            add_grain(line, item.offset)
            custom_ids.append(verdict.custom_id)
            lines.append(line)
            self._last_line = line
        self.requests, self._last_model = count, last_model
        return Requests(custom_ids, lines)

    def repeated(self, repeats: Iterable[tuple[str, int, int]]) -> None:
        """The caller found these (custom_id, first line, repeating line) among the requests feed() gave."""
        for custom_id, first, line in repeats:
            self._fail(duplicate_error(custom_id, first, line))

    def repeats_somewhere(self) -> None:
        """The caller found a custom_id among the requests feed() gave again, and no more about it.

        For an upload's check, which only wants to know whether the file is clean: such a repeat comes
        before any line error it kept (the check stops at its first), so no error is kept.
        """
        self.errors += 1
        self.error = None
        self.stopped = True

    def end(self) -> None:
        """The file is over: a file without a single request is refused as a whole."""
        if self.requests == 0 and self.clean:
            self._fail(LineError(1, "empty_file", "The input file has no requests."))

    @property
    def model(self) -> str | None:
        """The model every request names; None for a mix."""
        return next(iter(self.models)) if len(self.models) == 1 else None

    def summary(self) -> FileSummary | None:
        """The summary of a clean file that was fed whole; None when the batch must validate it itself."""
        if not self.clean or not self.requests or self.endpoint not in ENDPOINTS:
            return None
        assert self.endpoint is not None
        return FileSummary(
            self.endpoint, self.requests, self._last_line, self.model, self._cutter.grains(), self.limits
        )

    def _fail(self, error: LineError) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error(error)
            return
        if self.error is None or error.line < self.error.line:
            self.error = error
        self.stopped = True


class FileVerdict(NamedTuple):
    """What check_file finds: the file's errors (the earliest `keep`, by line) and what it holds."""

    errors: list[LineError]
    error_count: int
    requests: int  # non-blank lines, good or bad
    models: set[str]  # at most keep_models of them
    endpoint: str | None  # the batch's, or the one its first request names

    @property
    def ok(self) -> bool:
        return self.error_count == 0


def check_file(
    chunks: Iterable[bytes],
    endpoint: str | None,
    limits: LineLimits,
    keep: int = 100,
    keep_models: int = 2,
    on_requests: Callable[[list[bytes]], None] | None = None,
) -> FileVerdict:
    """Judge a whole file, given as chunks of bytes cut anywhere, by the rules a batch for `endpoint`
    applies (None: the endpoint its first request names). Every error is found, repeats included, but
    the repeat check holds the custom_ids in memory: for a file on the command line, not in the server.
    `on_requests` (if given) is handed the raw lines of the good requests, in order, a chunk at a time.
    """
    errors: list[LineError] = []
    count = 0

    def note(error: LineError) -> None:
        nonlocal count
        count += 1
        errors.append(error)

    check, splitter = FileCheck(limits, endpoint, note, keep_models=keep_models), LineSplitter(limits.max_line_bytes)
    first_seen: dict[str, int] = {}
    for located in _located_chunks(chunks, splitter):
        requests = check.feed(located)
        if on_requests is not None and requests.lines:
            on_requests(good_lines(located, requests.lines))
        for custom_id, line in zip(requests.custom_ids, requests.lines, strict=True):
            first = first_seen.setdefault(custom_id, line)
            if first != line:
                check.repeated([(custom_id, first, line)])
        if check.stopped:
            break
    check.end()
    errors.sort(key=attrgetter("line"))
    return FileVerdict(errors[:keep], count, check.requests, check.models, check.endpoint)


def good_lines(located: Sequence[Located], lines: list[int]) -> list[bytes]:
    """The raw lines, among `located` (consecutive lines), of the requests FileCheck.feed gave back."""
    first = located[0].line
    return [raw for line in lines if (raw := located[line - first].raw) is not None]


def _located_chunks(chunks: Iterable[bytes], splitter: LineSplitter) -> Iterator[list[Located]]:
    yield from map(splitter.feed, chunks)
    yield splitter.end()
