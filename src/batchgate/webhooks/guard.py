"""Where a webhook may be sent: public addresses only, unless `webhooks_allow_private` says otherwise.

A URL is checked on registration and again before each attempt, after DNS resolution. The
courier's connector resolves through `GuardedResolver`, so the addresses it connects to are the
ones checked (a name that changes its answer between check and send gains nothing), and it
follows no redirects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from batchgate.domain.webhooks import check_url_form
from batchgate.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def refused(address: Address) -> bool:
    """Loopback, link-local, private, shared, reserved, multicast: anything not a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _refusal(host: str, address: Address) -> InvalidRequest:
    return InvalidRequest(
        f"The webhook URL's host {host} is {address}, a loopback, link-local or private address; such URLs "
        f"are refused unless the server's config sets webhooks_allow_private = true.",
        param="url",
        code="webhook_url_not_allowed",
    )


async def resolve(host: str, port: int) -> list[Address]:
    """The addresses `host` stands for (itself if it is one); 400 if it resolves to none."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:  # gaierror, or a name no resolver takes (bad IDNA, a NUL)
        raise InvalidRequest(
            f"The webhook URL's host {host} cannot be resolved ({exc}).", param="url", code="webhook_url_unresolvable"
        ) from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_url(url: str, allow_private: bool) -> None:
    """Raise InvalidRequest unless `url` is a well-formed http(s) URL that may be sent to."""
    check_url_form(url)
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    for address in await resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
        if refused(address):
            raise _refusal(host, address)


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, and fails for a name with any address the guard refuses."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            if refused(address):
                raise OSError(_refusal(host, address).message)
        return results

    async def close(self) -> None:
        await self._inner.close()
