"""The rules over a whole batch input file, for both passes that judge one: the upload's check and the
validating stage.

Each line goes through domain/lines.py:check_line. Over the whole file: every request names one
endpoint, there are at most `max_lines` of them and at least one, and no custom_id repeats. Repeats
are found on disk by the caller (worker/scratch_ids.py:CustomIds), who hands them back to
FileCheck.repeated(), so both passes word and order them alike.

The upload's check does not know the batch yet: it learns the endpoint from the first request and
stops at the first error. A clean file gets a FileSummary that lets a batch for that endpoint skip its
own pass; any other file is read again by its batch, which reports every error with its line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from batchgate.domain.lines import ENDPOINTS, LineError, Request, check_line
from batchgate.domain.nesting import DEPTH_CEILING
from batchgate.domain.shards import ShardCutter
from batchgate.domain.splitting import Located


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
    def of(cls, settings) -> LineLimits:
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


def duplicate_error(custom_id: str, first: int, line: int) -> LineError:
    return LineError(line, "duplicate_custom_id", f"Line {line}: custom_id {custom_id!r} was already used on line {first}.",
                     "custom_id")


class FileCheck:
    """Fed a file's located lines in order, applies check_line to each and the file-level rules to all.

    `endpoint` is the batch's, or None for an upload's check (the first request names it). Errors go to
    `on_error`; without one, the check keeps the earliest error alone and stops feeding after the
    first (`stopped`), as an upload's check only wants to know whether the file is clean. A file with
    more than max_lines requests stops the check either way. `cutter` (if given) is fed each request's
    line and offset to cut shards.
    """

    def __init__(self, limits: LineLimits, endpoint: str | None = None,
                 on_error: Callable[[LineError], None] | None = None, cutter: ShardCutter | None = None):
        self.limits = limits
        self.endpoint = endpoint
        self.requests = 0  # non-blank lines, good or bad
        self.error: LineError | None = None  # the earliest error, when the check keeps it (no on_error)
        self.errors = 0
        self.stopped = False
        self.models: set[str] = set()  # at most two: one model, or "more than one"
        self._on_error = on_error
        self._last_model: str | None = None
        self._last_line = 0
        self._cutter = cutter if cutter is not None else ShardCutter(limits.shard_lines)

    @property
    def clean(self) -> bool:
        return self.errors == 0

    def feed(self, located: Iterable[Located]) -> list[tuple[str, int]]:
        """Check lines in order; (custom_id, line) of each good request, for the caller's repeat check.

        A plain loop with everything it needs in locals: it runs once per line of every file.
        """
        pairs: list[tuple[str, int]] = []
        if self.stopped:
            return pairs
        count, endpoint, last_model = self.requests, self.endpoint, self._last_model
        max_lines, max_line_bytes, max_depth = self.limits.max_lines, self.limits.max_line_bytes, self.limits.max_json_depth
        check, request, add_grain, add_pair = check_line, Request, self._cutter.add, pairs.append
        for item in located:
            line = item.line
            verdict = check(item.raw, line, endpoint, max_line_bytes, max_depth)
            if verdict is None:
                continue
            count += 1
            if count > max_lines:
                self._fail(LineError(line, "too_many_tasks", f"The file has more than {max_lines} requests (line {line})."))
                self.stopped = True
                break
            if type(verdict) is not request:
                self._fail(verdict)
                if self.stopped:
                    break
                continue
            model = verdict.model
            if endpoint is None:
                endpoint = self.endpoint = verdict.url
            if model != last_model:
                if len(self.models) < 2:
                    self.models.add(model)
                last_model = model
            add_grain(line, item.offset)
            add_pair((verdict.custom_id, line))
            self._last_line = line
        self.requests, self._last_model = count, last_model
        return pairs

    def repeated(self, repeats: Iterable[tuple[str, int, int]]) -> None:
        """The caller found these (custom_id, first line, repeating line) among the pairs feed() gave."""
        for custom_id, first, line in repeats:
            self._fail(duplicate_error(custom_id, first, line))

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
        return FileSummary(self.endpoint, self.requests, self._last_line, self.model, self._cutter.grains(), self.limits)

    def _fail(self, error: LineError) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error(error)
            return
        if self.error is None or error.line < self.error.line:
            self.error = error
        self.stopped = True
