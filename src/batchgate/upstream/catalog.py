"""Which model names the router can serve, for GET /models."""

from __future__ import annotations

import asyncio

from batchgate.upstream.router import Router

GLOB_CHARS = frozenset("*?[")


async def routable_models(router: Router) -> list[dict]:
    """Every name an upstream lists or a pattern spells out, kept when the router sends that name there.

    A name that an earlier upstream's pattern catches is listed once, under the upstream that serves it.
    """
    routes = router.routes
    listed = await asyncio.gather(*(_names(upstream) for _, upstream in routes))
    models: dict[str, dict] = {}
    for (patterns, upstream), names in zip(routes, listed, strict=True):
        literal = [p for p in patterns if not GLOB_CHARS & set(p)]
        for name in [*names, *literal]:
            if name not in models and router.route(name) is upstream:
                models[name] = {"id": name, "object": "model", "created": 0, "owned_by": upstream.name}
    return list(models.values())


async def _names(upstream) -> list[str]:
    models = getattr(upstream, "models", None)
    return await models() if models is not None else []
