"""body.model → the pool of upstreams that serve it.

The first upstream (in config order) with a pattern matching the model serves it, together with
every other upstream that lists that same pattern: that is the model's pool, and load is spread
over its members. A `[[limits]]` table whose `model` pattern matches adds a door of the model's own.
With no [[upstreams]] at all, the built-in local models serve, and `"model": "auto"` names the
endpoint's local default.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable

from batchgate import metrics
from batchgate.domain.fairness import ANONYMOUS, Flow
from batchgate.domain.results import Outcome
from batchgate.domain.retry import RetryPolicy
from batchgate.errors import ConfigError
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import NO_CACHE, SHARED_CACHE, PrefixCache, RetryGate, Stream, StreamingUpstream, Upstream
from batchgate.upstream.engines import AUTO, resolve_model
from batchgate.upstream.http import HttpUpstream
from batchgate.upstream.local import DEFAULT_LOCAL, LocalUpstream, not_served
from batchgate.upstream.pool import Affinity, Member, Pool, model_door

UpstreamFactory = Callable[[UpstreamConfig, Settings], StreamingUpstream]

# Upstream kinds by the `kind` key of an [[upstreams]] table.
KINDS: dict[str, UpstreamFactory] = {"openai": HttpUpstream, "local": LocalUpstream}
MODEL_CACHE = 4096


class Router:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self._settings, self._clock = settings, clock
        self._policy = RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds)
        self._members: list[tuple[tuple[str, ...], Member]] = []
        for config in settings.upstreams or (DEFAULT_LOCAL,):
            factory = KINDS.get(config.kind)
            if factory is None:
                raise ConfigError(f"upstream {config.name!r}: unknown kind {config.kind!r} (known: {', '.join(KINDS)})")
            self._members.append((config.models, Member(factory(config, settings), config, settings, clock)))
        metrics.watch_upstreams(lambda: [member for _, member in self._members])
        self._pools: dict[tuple, Pool] = {}  # by (pattern, limits pattern, model if it has limits)
        self._by_model: dict[str, Pool | None] = {}  # a lookup cache, dropped when it grows large

    @property
    def routes(self) -> list[tuple[tuple[str, ...], Upstream]]:
        return [(patterns, member.upstream) for patterns, member in self._members]

    def route(self, model: str) -> Upstream | None:
        """The first upstream serving `model` (its pool's first member)."""
        pool = self.pool(model)
        return None if pool is None else pool.members[0].upstream

    def prefix_cache(self, endpoint: str, model: str | None) -> PrefixCache:
        """How the upstreams of `model` reuse prompt starts (None: a mix of models, taken to be served by
        shared caches). A pool is taken for a shared cache only if every member has one; for caches per
        slot, its slots are all its members' (a pool mixing the two kinds is taken to have none)."""
        if model is None:
            return SHARED_CACHE
        pool = self.pool(resolve_model(endpoint, {"model": model})["model"])
        caches = [member.upstream.prefix_cache(endpoint) for member in pool.members] if pool else []
        if caches and all(cache.shared for cache in caches):
            return SHARED_CACHE
        if caches and all(cache.slots for cache in caches):
            return PrefixCache(sum(cache.slots or 0 for cache in caches))
        return NO_CACHE

    def pool(self, model: str) -> Pool | None:
        try:
            return self._by_model[model]
        except KeyError:
            if len(self._by_model) >= MODEL_CACHE:
                self._by_model.clear()
            pool = self._by_model[model] = self._find_pool(model)
            return pool

    def _find_pool(self, model: str) -> Pool | None:
        for patterns, _ in self._members:
            pattern = next((p for p in patterns if fnmatch.fnmatchcase(model, p)), None)
            if pattern is None:
                continue
            limits = next((lim for lim in self._settings.limits if fnmatch.fnmatchcase(model, lim.model)), None)
            # Models without limits share their pattern's pool; each limited model has its own door.
            key = (pattern, limits and limits.model, limits and model)
            if key not in self._pools:
                members = [member for patterns_, member in self._members if pattern in patterns_]
                door = model_door(limits, model, self._clock) if limits else None
                affinity = (
                    Affinity(members, self._settings.affinity_load_factor) if self._settings.cache_aware else None
                )
                self._pools[key] = Pool(members, door, self._policy, self._clock, affinity)
            return self._pools[key]
        return None

    def _pick(self, endpoint: str, body: dict) -> tuple[Pool, dict] | Outcome:
        body = resolve_model(endpoint, body)
        pool = self.pool(body["model"])
        if pool is not None:
            return pool, body
        if body["model"] == AUTO:
            return not_served(endpoint, AUTO, f"'{AUTO}' names the local default model for an endpoint")
        return Outcome(
            error_code="model_not_found",
            error_message=f"No upstream serves model {body['model']!r}; add it to an [[upstreams]] "
            f"table's 'models' in the config.",
        )

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None, flow: Flow = ANONYMOUS) -> Outcome:
        """`flow` (tenant, batch) is whose turn it is at a busy upstream; leave it out for a one-off call."""
        picked = self._pick(endpoint, body)
        return picked if isinstance(picked, Outcome) else await picked[0].send(endpoint, picked[1], gate, flow)

    async def stream(self, endpoint: str, body: dict, flow: Flow = ANONYMOUS) -> Outcome | Stream:
        """A `stream: true` request, routed and admitted like any other."""
        picked = self._pick(endpoint, body)
        return picked if isinstance(picked, Outcome) else await picked[0].stream(endpoint, picked[1], flow)

    async def close(self) -> None:
        for _, member in self._members:
            await member.upstream.close()
