"""Webhooks, the pure part: endpoints, the events a batch's end raises, their bodies, the retry schedule."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from batchgate.domain.records import Scope
from batchgate.domain.status import BatchStatus
from batchgate.errors import InvalidRequest

# The event a batch raises on reaching each terminal status.
EVENT_OF_STATUS: Mapping[BatchStatus, str] = {
    BatchStatus.COMPLETED: "batch.completed",
    BatchStatus.FAILED: "batch.failed",
    BatchStatus.EXPIRED: "batch.expired",
    BatchStatus.CANCELLED: "batch.cancelled",
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_OF_STATUS.values())
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    scope: Scope
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: int

    def to_wire(self, with_secret: bool = False) -> dict[str, Any]:
        """The endpoint as the API shows it; its secret only in the answer that created it."""
        wire: dict[str, Any] = {
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "events": list(self.events),
            "created_at": self.created_at,
        }
        if with_secret:
            wire["secret"] = self.secret
        return wire


@dataclass(frozen=True)
class Delivery:
    """One event due at one endpoint, as a worker leased it to send."""

    event_id: str
    endpoint_id: str
    event_type: str
    batch_id: str
    event_created_at: int
    url: str
    secret: str
    attempts: int  # made so far


@dataclass(frozen=True)
class EndpointRequest:
    url: str
    events: tuple[str, ...]


def new_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def event_body(delivery: Delivery) -> bytes:
    """The JSON body sent for an event: the same bytes on every attempt."""
    return orjson.dumps(
        {
            "id": delivery.event_id,
            "object": "event",
            "type": delivery.event_type,
            "created_at": delivery.event_created_at,
            "data": {"id": delivery.batch_id},
        }
    )


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """The wait after the `attempts`-th failed attempt: doubling from `base_seconds`, at most `max_seconds`."""
    return min(max_seconds, base_seconds * 2.0 ** min(attempts - 1, 62))


def next_attempt_at(
    attempts: int, failed_at: float, event_created_at: float, base: float, cap: float, window: float
) -> float | None:
    """When to try again after `attempts` failed attempts; None once that falls past the retry window."""
    at = failed_at + retry_delay(attempts, base, cap)
    return at if at <= event_created_at + window else None


def parse_endpoint_request(body: Any) -> EndpointRequest:
    """The body of POST /webhooks: {"url": ..., "events": [...]} (events default to every type)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object with a 'url'.", code="invalid_request")
    unknown = set(body) - {"url", "events"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidRequest("'url' is required: the http:// or https:// URL to send events to.", param="url")
    check_url_form(url)
    return EndpointRequest(url, parse_events(body.get("events", list(EVENT_TYPES))))


def check_url_form(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"'url' is longer than {MAX_URL_LENGTH} characters.", param="url", code="invalid_url")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        raise InvalidRequest(
            f"'url' must be an http:// or https:// URL with a host (and no user name), got {url!r}.",
            param="url",
            code="invalid_url",
        )


def parse_events(events: Any) -> tuple[str, ...]:
    """A list of event types, each known, none twice, at least one; in the order given."""
    if not isinstance(events, list) or not events or not all(isinstance(event, str) for event in events):
        raise InvalidRequest(
            f"'events' must be a non-empty list of event types: {', '.join(EVENT_TYPES)}.", param="events"
        )
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"Unknown event type {unknown[0]!r}; the types are {', '.join(EVENT_TYPES)}.",
            param="events",
            code="invalid_event_type",
        )
    return tuple(dict.fromkeys(events))
