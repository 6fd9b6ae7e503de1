"""body.model → upstream: the first upstream whose glob patterns match, in config order."""

from __future__ import annotations

import fnmatch
from typing import Callable

from batchgate.domain.results import Outcome
from batchgate.errors import ConfigError
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import RetryGate, Stream, Upstream
from batchgate.upstream.engines import AUTO, resolve_model
from batchgate.upstream.http import HttpUpstream
from batchgate.upstream.local import DEFAULT_LOCAL, LocalUpstream, not_served

UpstreamFactory = Callable[[UpstreamConfig, Settings], Upstream]

# Upstream kinds by the `kind` key of an [[upstreams]] table.
KINDS: dict[str, UpstreamFactory] = {"openai": HttpUpstream, "local": LocalUpstream}


class Router:
    def __init__(self, settings: Settings):
        self._routes: list[tuple[tuple[str, ...], Upstream]] = []
        for config in settings.upstreams or (DEFAULT_LOCAL,):
            factory = KINDS.get(config.kind)
            if factory is None:
                raise ConfigError(f"upstream {config.name!r}: unknown kind {config.kind!r} "
                                  f"(known: {', '.join(KINDS)})")
            self._routes.append((config.models, factory(config, settings)))

    def route(self, model: str) -> Upstream | None:
        for patterns, upstream in self._routes:
            if any(fnmatch.fnmatchcase(model, p) for p in patterns):
                return upstream
        return None

    @property
    def routes(self) -> list[tuple[tuple[str, ...], Upstream]]:
        return list(self._routes)

    def _pick(self, endpoint: str, body: dict) -> tuple[Upstream, dict] | Outcome:
        body = resolve_model(endpoint, body)
        upstream = self.route(body["model"])
        if upstream is not None:
            return upstream, body
        if body["model"] == AUTO:
            return not_served(endpoint, AUTO, f"'{AUTO}' names the local default model for an endpoint")
        return Outcome(error_code="model_not_found",
                       error_message=f"No upstream serves model {body['model']!r}; add it to an [[upstreams]] "
                                     f"table's 'models' in the config.")

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        picked = self._pick(endpoint, body)
        return picked if isinstance(picked, Outcome) else await picked[0].send(endpoint, picked[1], gate)

    async def stream(self, endpoint: str, body: dict) -> Outcome | Stream:
        """A `stream: true` request, routed like any other."""
        picked = self._pick(endpoint, body)
        return picked if isinstance(picked, Outcome) else await picked[0].stream(endpoint, picked[1])

    async def close(self) -> None:
        for _, upstream in self._routes:
            await upstream.close()
