"""Webhook endpoints and their outbox of deliveries, for every SQL backend (see sql_work.SqlBase).

The outbox is written by `outbox_event`, inside a batch's terminal transition (sql.py), so the
event exists exactly when the status change does. Couriers lease due deliveries, as shards are
leased: several workers never send one delivery at once, and a dead courier's lease lapses.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchgate.domain.records import Scope
from batchgate.domain.webhooks import Delivery, WebhookEndpoint
from batchgate.store import rows as r
from batchgate.store.sql_work import Db, SqlBase

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class DeliveryState:
    """Where one event's delivery to one endpoint stands (for operators and tests)."""

    endpoint_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_error: str | None


class WebhookQueries(SqlBase):
    async def insert_webhook(self, endpoint: WebhookEndpoint) -> None:
        await self._write(lambda db: db.execute(self.Q["insert_webhook"], r.webhook_params(endpoint)))

    async def list_webhooks(self, scope: Scope) -> list[WebhookEndpoint]:
        rows = await self._all(self.Q["list_webhooks"], {"owner": scope.owner, "on_behalf_of": scope.on_behalf_of})
        return [r.webhook_of(row) for row in rows]

    async def delete_webhook(self, scope: Scope, endpoint_id: str) -> bool:
        """Delete the endpoint and its deliveries still to send; False if the scope has no such endpoint."""
        params = {"id": endpoint_id, "owner": scope.owner, "on_behalf_of": scope.on_behalf_of}
        return await self._write(lambda db: db.execute(self.Q["delete_webhook"], params).rowcount == 1)

    def outbox_event(self, db: Db, batch_id: str, event_id: str, event_type: str, now: int) -> None:
        """Within the caller's transaction: the event, and a delivery to each endpoint listening for it."""
        params = {"event_id": event_id, "type": event_type, "batch_id": batch_id, "now": now}
        db.execute(self.Q["insert_event"], params)
        db.execute(self.Q["insert_deliveries"], {**params, "listens": f"%,{event_type},%"})

    async def claim_deliveries(self, worker_id: str, now: float, lease_seconds: float, limit: int) -> list[Delivery]:
        """Lease up to `limit` due deliveries, oldest events first."""

        def claim(db: Db) -> list[Delivery]:
            due = [Delivery(*row) for row in db.execute(self.Q["due_deliveries"], {"now": now, "limit": limit})]
            leases = [
                {
                    "event_id": d.event_id,
                    "endpoint_id": d.endpoint_id,
                    "worker_id": worker_id,
                    "until": now + lease_seconds,
                }
                for d in due
            ]
            if leases:
                db.executemany(self.Q["lease_delivery"], leases)
            return due

        return await self._write(claim)

    async def settle_delivery(
        self, delivery: Delivery, worker_id: str, next_attempt_at: float | None, last_error: str | None
    ) -> bool:
        """Record an attempt: delivered (no error), to retry at `next_attempt_at`, or given up (neither).

        False if `worker_id` no longer held the delivery's lease (another courier has it now).
        """
        params = {
            "event_id": delivery.event_id,
            "endpoint_id": delivery.endpoint_id,
            "worker_id": worker_id,
            "state": _state_after(next_attempt_at, last_error),
            "next_attempt_at": next_attempt_at or 0.0,
            "last_error": last_error,
        }
        return await self._write(lambda db: db.execute(self.Q["settle_delivery"], params).rowcount == 1)

    async def sweep_events(self, before: float) -> int:
        """Delete the events raised before `before` that have no delivery left to send; how many."""
        return await self._write(lambda db: db.execute(self.Q["sweep_events"], {"before": before}).rowcount)

    async def deliveries_of_batch(self, batch_id: str) -> list[DeliveryState]:
        rows = await self._all(self.Q["deliveries_of_batch"], {"batch_id": batch_id})
        return [DeliveryState(*row) for row in rows]


def _state_after(next_attempt_at: float | None, last_error: str | None) -> str:
    """A delivery's state after an attempt: delivered, pending a retry, or failed (given up)."""
    if last_error is None:
        return DELIVERED
    return PENDING if next_attempt_at is not None else FAILED
