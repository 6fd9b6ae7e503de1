"""Webhooks' pure parts and their guard: requests, the retry schedule, bodies, signatures, refused addresses."""

from __future__ import annotations

import ipaddress
import time

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from batchgate.domain.status import TERMINAL
from batchgate.domain.webhooks import (
    EVENT_OF_STATUS,
    EVENT_TYPES,
    Delivery,
    event_body,
    new_secret,
    next_attempt_at,
    parse_endpoint_request,
    retry_delay,
)
from batchgate.errors import InvalidRequest
from batchgate.webhooks.courier import signed_headers
from batchgate.webhooks.guard import GuardedResolver, check_url, refused

DELIVERY = Delivery("evt_1", "we_1", "batch.completed", "batch_1", 1700000000, "https://example.com/h", new_secret(), 0)


def test_every_terminal_status_has_its_event():
    assert set(EVENT_OF_STATUS) == set(TERMINAL)
    assert EVENT_TYPES == ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled")


def test_an_endpoint_request_defaults_to_every_event_and_keeps_the_given_ones_once():
    assert parse_endpoint_request({"url": "https://example.com/h"}).events == EVENT_TYPES
    spec = parse_endpoint_request({"url": "http://example.com:8080/h", "events": ["batch.failed", "batch.failed"]})
    assert spec.events == ("batch.failed",)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"url": 3}, "url"),
        ({"url": "example.com/h"}, "url"),
        ({"url": "https://user:pw@example.com/h"}, "url"),
        ({"url": "https://example.com:http/h"}, "url"),
        ({"url": "https://example.com/" + "a" * 2048}, "url"),
        ({"url": "https://example.com/h", "events": "batch.completed"}, "events"),
        ({"url": "https://example.com/h", "events": ["batch.started"]}, "events"),
    ],
)
def test_bad_endpoint_requests_name_what_is_wrong(body, param):
    with pytest.raises(InvalidRequest) as caught:
        parse_endpoint_request(body)
    assert caught.value.param == param


def test_retries_double_up_to_the_cap_and_stop_at_the_window():
    assert [retry_delay(n, 5, 60) for n in range(1, 6)] == [5, 10, 20, 40, 60]
    assert retry_delay(10_000, 5, 3600) == 3600
    assert next_attempt_at(1, failed_at=100, event_created_at=100, base=5, cap=60, window=86400) == 105
    assert next_attempt_at(3, failed_at=86_490, event_created_at=100, base=5, cap=60, window=86400) is None


def test_the_body_is_the_contract_event_and_the_signature_verifies():
    body = event_body(DELIVERY)
    assert orjson.loads(body) == {
        "id": "evt_1",
        "object": "event",
        "type": "batch.completed",
        "created_at": 1700000000,
        "data": {"id": "batch_1"},
    }
    headers = signed_headers(DELIVERY, body, time.time())
    assert headers["webhook-id"] == "evt_1" and headers["webhook-signature"].startswith("v1,")
    assert Webhook(DELIVERY.secret).verify(body, headers) == orjson.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(DELIVERY.secret).verify(body.replace(b"batch_1", b"batch_2"), headers)


def test_secrets_are_standard_webhooks_secrets_and_differ():
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::",
    ],
)
def test_private_and_special_addresses_are_refused(address):
    assert refused(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert not refused(ipaddress.ip_address(address))


async def test_check_url_resolves_names_and_honours_the_setting():
    with pytest.raises(InvalidRequest) as caught:
        await check_url("http://localhost:1/h", allow_private=False)
    assert caught.value.code == "webhook_url_not_allowed"
    await check_url("http://localhost:1/h", allow_private=True)
    with pytest.raises(InvalidRequest) as caught:
        await check_url("http://no-such-host.invalid/h", allow_private=False)
    assert caught.value.code == "webhook_url_unresolvable"


async def test_the_couriers_resolver_refuses_a_name_of_a_private_address():
    resolver = GuardedResolver()
    try:
        with pytest.raises(OSError, match="webhooks_allow_private"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
