"""Sending the outbox: a worker's background task, apart from batch work.

Each pass leases due deliveries (oldest events first) up to `webhook_concurrency` in flight,
posts each one signed the Standard Webhooks way, and records the attempt: delivered on a 2xx,
otherwise retried after a doubling wait until `webhook_retry_window_seconds` after the event.
It reads the `CourierSettings` slice. A courier that dies mid-attempt leaves a lease that lapses;
the delivery is then sent again, with the same `webhook-id`, which is how a receiver recognises a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from batchgate import __version__
from batchgate.domain.webhooks import Delivery, event_body, next_attempt_at
from batchgate.errors import InvalidRequest
from batchgate.store import Store
from batchgate.webhooks.guard import GuardedResolver, check_url
from batchgate.worker.context import CourierSettings

log = logging.getLogger("batchgate.webhooks")
SWEEP_SECONDS = 600.0  # how often events past their retry window, all settled, are deleted


def signed_headers(delivery: Delivery, body: bytes, sent_at: float) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt: the event's id, the attempt's time, the signature."""
    moment = datetime.fromtimestamp(int(sent_at), tz=UTC)
    signature = Webhook(delivery.secret).sign(delivery.event_id, moment, body.decode())
    return {
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(sent_at)),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": f"batchgate-webhooks/{__version__}",
    }


class Courier:
    """Carries the outbox's deliveries to their endpoints, for one worker process."""

    def __init__(
        self, settings: CourierSettings, store: Store, clock: Callable[[], float], worker_id: Callable[[], str]
    ):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.worker_id = worker_id  # the worker's current id: it changes when its database session is renewed
        self._sending: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._swept_at = float("-inf")

    async def run(self) -> None:
        settings = self.settings
        connector = aiohttp.TCPConnector(
            limit=settings.webhook_concurrency, resolver=None if settings.webhooks_allow_private else GuardedResolver()
        )
        timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            try:
                while True:
                    self._wake.clear()
                    await self._sweep()
                    await self._start_attempts(http)
                    # asyncio.timeout, not wait_for, which on Python 3.11 may swallow a cancel arriving with a wake.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(settings.poll_interval_seconds):
                            await self._wake.wait()
            finally:
                for task in self._sending:
                    task.cancel()
                await asyncio.gather(*self._sending, return_exceptions=True)

    async def _sweep(self) -> None:
        now = self.clock()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        try:
            await self.store.sweep_events(now - self.settings.webhook_retry_window_seconds)
        except Exception as exc:
            log.warning("could not sweep old webhook events; retrying later: %s", exc)

    async def _start_attempts(self, http: aiohttp.ClientSession) -> None:
        free = self.settings.webhook_concurrency - len(self._sending)
        if free <= 0:
            return
        lease = self.settings.webhook_timeout_seconds + self.settings.lease_seconds
        worker_id = self.worker_id()
        try:
            due = await self.store.claim_deliveries(worker_id, self.clock(), lease, free)
        except Exception as exc:
            log.warning("could not claim webhook deliveries; retrying: %s", exc)
            return
        for delivery in due:
            task = asyncio.create_task(self._attempt(http, delivery, worker_id), name=f"webhook-{delivery.event_id}")
            self._sending.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._sending.discard(task)
        self._wake.set()  # a slot is free

    async def _attempt(self, http: aiohttp.ClientSession, delivery: Delivery, worker_id: str) -> None:
        settings = self.settings
        error = await self._send(http, delivery)
        attempt = delivery.attempts + 1
        failed_at = self.clock()
        retry_at = None
        where = f"webhook {delivery.event_id} ({delivery.event_type}) to {delivery.endpoint_id} {delivery.url}"
        if error is None:
            log.info("%s: delivered on attempt %d", where, attempt)
        else:
            retry_at = next_attempt_at(
                attempt,
                failed_at,
                delivery.event_created_at,
                settings.webhook_retry_base_seconds,
                settings.webhook_retry_max_seconds,
                settings.webhook_retry_window_seconds,
            )
            then = f"retrying in {retry_at - failed_at:.1f}s" if retry_at is not None else "giving up"
            log.warning("%s: attempt %d failed (%s); %s", where, attempt, error, then)
        try:
            if not await self.store.settle_delivery(delivery, worker_id, retry_at, error):
                log.warning("%s: its lease lapsed during the attempt; another courier has it", where)
        except Exception as exc:
            log.warning("%s: could not record the attempt (it will be made again): %s", where, exc)

    async def _send(self, http: aiohttp.ClientSession, delivery: Delivery) -> str | None:
        """One attempt: None if the endpoint answered 2xx, else why not."""
        body = event_body(delivery)
        try:
            await check_url(delivery.url, self.settings.webhooks_allow_private)
            headers = signed_headers(delivery, body, self.clock())
            async with http.post(delivery.url, data=body, headers=headers, allow_redirects=False) as answer:
                if 200 <= answer.status < 300:
                    return None
                return f"HTTP {answer.status}"
        except InvalidRequest as exc:
            return exc.message
        except TimeoutError:
            return f"no answer within {self.settings.webhook_timeout_seconds}s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug here must cost this attempt only, not the courier
            log.exception("webhook %s: the attempt failed inside batchgate", delivery.event_id)
            return f"internal error: {type(exc).__name__}: {exc}"
