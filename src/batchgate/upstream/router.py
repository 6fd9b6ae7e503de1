"""body.model → upstream: the first upstream whose glob patterns match, in config order."""

from __future__ import annotations

import fnmatch
from typing import Callable

from batchgate.domain.results import Outcome
from batchgate.errors import ConfigError
from batchgate.settings import Settings, UpstreamConfig
from batchgate.upstream.base import RetryGate, Upstream
from batchgate.upstream.http import HttpUpstream

UpstreamFactory = Callable[[UpstreamConfig, Settings], Upstream]

# Upstream kinds by the `kind` key of an [[upstreams]] table.
KINDS: dict[str, UpstreamFactory] = {"openai": HttpUpstream}


class Router:
    def __init__(self, settings: Settings):
        self._routes: list[tuple[tuple[str, ...], Upstream]] = []
        for config in settings.upstreams:
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

    async def send(self, endpoint: str, body: dict, gate: RetryGate | None = None) -> Outcome:
        upstream = self.route(body["model"])
        if upstream is None:
            return Outcome(error_code="model_not_found",
                           error_message=f"No upstream serves model {body['model']!r}; add it to an [[upstreams]] "
                                         f"table's 'models' in the config.")
        return await upstream.send(endpoint, body, gate)

    async def close(self) -> None:
        for _, upstream in self._routes:
            await upstream.close()
