"""Checking a batch input file as it is uploaded, for everything the validating stage checks that
does not depend on the batch. A clean file's summary lets a batch skip its own pass over the file.

Only a clean file gets a summary: a file with any bad line, or with lines for more than one
endpoint, is validated by its batch as before, which reports every error with its line number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from batchgate.domain.lines import ENDPOINTS, is_blank, request_shape
from batchgate.domain.nesting import DEPTH_CEILING
from batchgate.domain.shards import ShardCutter


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


class FileCheck:
    """Fed a file's located lines in order; spoiled for good by the first line validation would refuse.

    Duplicate custom_ids are left to the caller, who keeps them on disk: feed() returns each request's
    custom_id, and summary() is only worth asking for when none repeats.
    """

    def __init__(self, limits: LineLimits):
        self.limits = limits
        self.clean = True
        self.endpoint: str | None = None
        self.requests = 0
        self._last_line = 0
        self._models: set[str] = set()  # at most two: one model, or "more than one"
        self._last_model: str | None = None
        self._cutter = ShardCutter(limits.shard_lines)

    def feed(self, located: Iterable[tuple[int, int, bytes | None]]) -> list[str]:
        """Check (line, offset, bytes or None when over the size limit) items; their requests' custom_ids."""
        if not self.clean:
            return []
        ids: list[str] = []
        count, endpoint, max_lines, last_model = self.requests, self.endpoint, self.limits.max_lines, self._last_model
        max_depth = self.limits.max_json_depth
        for line, offset, raw in located:
            shape = None if raw is None else request_shape(raw, max_depth)
            if shape is None:
                if raw is not None and is_blank(raw):
                    continue
                return self.spoil()
            custom_id, url, model = shape
            if url != endpoint:
                if endpoint is not None:
                    return self.spoil()
                endpoint = self.endpoint = url
            count += 1
            if count > max_lines:
                return self.spoil()
            if model != last_model:
                if len(self._models) < 2:
                    self._models.add(model)
                last_model = model
            self._cutter.add(line, offset)
            ids.append(custom_id)
            self._last_line = line
        self.requests, self._last_model = count, last_model
        return ids

    def spoil(self) -> list[str]:
        """Give up on the file (a repeated custom_id, found by the caller)."""
        self.clean = False
        return []

    def summary(self) -> FileSummary | None:
        """The summary of a clean file that was fed whole; None when the batch must validate it itself."""
        if not self.clean or not self.requests or self.endpoint not in ENDPOINTS:
            return None
        model = next(iter(self._models)) if len(self._models) == 1 else None
        return FileSummary(self.endpoint, self.requests, self._last_line, model, self._cutter.grains(), self.limits)
