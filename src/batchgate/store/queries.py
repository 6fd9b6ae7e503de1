"""Every SQL statement of the metadata stores, by name, with named parameters.

A statement is written once here, in SQLite's spelling of parameters (`:name`), and called by
its name with a dict of values. Where the dialects differ (row locks), it has a slot for a small
fragment each backend supplies (`{lock_batch}`…, see FRAGMENTS). A `Catalogue` is one backend's
copy: fragments filled in, parameters in its driver's style (`%(name)s` for psycopg), made once
when the backend's module is imported.

A few statements are completed per call (IN lists, a transition's SET list, a page's filters):
their runtime slots (`{skip}`, `{assignments}`, `{where}`, `{order}`) are filled by
`Catalogue.compose`, which converts and caches the result.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from batchgate.domain.status import ACTIVE
from batchgate.store.rows import (
    BATCH_COLUMNS,
    FILE_COLUMNS,
    KEY_COLUMNS,
    NEW_BATCH_COLUMNS,
    RESULT_COLUMNS,
    RESULT_ROW_COLUMNS,
    SHARD_COLUMNS,
    SPAN_COLUMNS,
    SUMMARY_COLUMNS,
    WEBHOOK_COLUMNS,
)

# The dialect fragments a backend supplies, appended to the statements that name them: row locks
# on the batch row a claimer or finisher works on (lock_batch), on the shard a claimer picks, which
# others skip (lock_shard), on the shard a result commit is fenced by (fence_shard), and on a file
# row, by its delete (lock_file, exclusive) and by a batch insert naming it as input (share_file), and
# on the webhook deliveries a sender claims, which other couriers skip (lock_delivery).
FRAGMENTS = ("lock_batch", "lock_shard", "fence_shard", "lock_file", "share_file", "lock_delivery")


def _columns(columns: Iterable[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{column}" for column in columns)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({_columns(columns)}) VALUES ({_columns(columns, ':')})"


_ACTIVE = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))  # an SQL list of the unfinished statuses
# Statuses a worker drives under the batch lease; in_progress is worked on shard by shard instead.
_DRIVEN = "'validating', 'finalizing', 'cancelling'"
# Statuses in which a batch lease may be held (batches_by_status serves the lookup).
_LEASED = "'validating', 'in_progress', 'finalizing', 'cancelling'"
_LIVE = "lease_owner IS NOT NULL AND lease_expires_at >= :now"  # a lease someone is working under
FREE_LEASE = "(lease_owner IS NULL OR lease_expires_at < :now)"  # a lease anyone may claim
# A shard holding one of its batch's places: a window of its own, not one handed on to it.
_PLACE = f"done = 0 AND handed_on = 0 AND {_LIVE}"
_IN_SCOPE = "owner = :owner AND on_behalf_of = :on_behalf_of"
_FENCE = "batch_id = :batch_id AND shard = :shard AND lease_owner = :worker_id"  # the lease holder's shard row

QUERIES: dict[str, str] = {
    # schema ---------------------------------------------------------------------------------
    "create_migrations_table": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
    "applied_migrations": "SELECT version FROM schema_migrations",
    "record_migration": "INSERT INTO schema_migrations (version) VALUES (:version)",
    # keys -----------------------------------------------------------------------------------
    "insert_key": _insert("api_keys", (*KEY_COLUMNS, "secret_hash")),
    "list_keys": f"SELECT {_columns(KEY_COLUMNS)} FROM api_keys ORDER BY created_at, id",
    "revoke_key": "UPDATE api_keys SET revoked_at = :now WHERE (id = :key OR name = :key) AND revoked_at IS NULL",
    "owner_of_key": "SELECT owner FROM api_keys WHERE secret_hash = :secret_hash AND revoked_at IS NULL",
    # files ----------------------------------------------------------------------------------
    "insert_file": _insert("files", FILE_COLUMNS),
    "insert_summary": _insert("file_summaries", SUMMARY_COLUMNS),
    "get_summary": f"SELECT {_columns(SUMMARY_COLUMNS)} FROM file_summaries WHERE file_id = :file_id",
    "get_file": f"SELECT {_columns(FILE_COLUMNS)} FROM files WHERE id = :id AND {_IN_SCOPE}",
    # One page in the caller's scope, in insertion order, one row more than asked; {where} holds
    # the filters and the cursor (page_after).
    "page_files": f"SELECT {_columns(FILE_COLUMNS)} FROM files WHERE {_IN_SCOPE}{{where}} "
    "ORDER BY seq {order} LIMIT :limit",
    # The cursor must be the caller's own; an unknown one compares with NULL: an empty page.
    "page_after": " AND seq {cmp} (SELECT seq FROM {table} WHERE id = :after AND " + _IN_SCOPE + ")",
    # The row lock orders a delete against a batch insert naming the file (which shares the lock):
    # whichever comes second sees what the first committed, so they never both succeed.
    "lock_file": f"SELECT {_columns(FILE_COLUMNS)} FROM files WHERE id = :id{{lock_file}}",
    # A file is deleted only while no unfinished batch reads it as input.
    "delete_unused_file": "DELETE FROM files WHERE id = :id AND NOT EXISTS "
    f"(SELECT 1 FROM batches WHERE input_file_id = :id AND status IN ({_ACTIVE}))",
    "unfinished_user": f"SELECT id FROM batches WHERE input_file_id = :id AND status IN ({_ACTIVE}) LIMIT 1",
    # A file some unfinished batch still reads or writes is kept alive until that batch ends.
    "expired_files": f"SELECT {_columns(FILE_COLUMNS)} FROM files f WHERE expires_at IS NOT NULL "
    f"AND expires_at <= :now AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.status IN ({_ACTIVE}) "
    "AND f.id IN (b.input_file_id, b.output_file_id, b.error_file_id)) LIMIT :limit",
    # batches --------------------------------------------------------------------------------
    # Dispatch copies of ended batches: finalize deletes each, a crash just before may leave one.
    "ended_dispatch_copies": f"SELECT id, dispatch_key FROM batches WHERE dispatch_key IS NOT NULL "
    f"AND status NOT IN ({_ACTIVE}) LIMIT :limit",
    "forget_dispatch_copy": "UPDATE batches SET dispatch_key = NULL WHERE id = :batch_id",
    # Inserted only while its input file exists in the batch's scope, holding that file's row lock
    # until the commit, so a concurrent delete of the file either comes first (no batch) or fails.
    "insert_batch_if_file": f"INSERT INTO batches ({_columns(NEW_BATCH_COLUMNS)}) "
    f"SELECT {_columns(NEW_BATCH_COLUMNS, ':')} FROM files "
    f"WHERE id = :input_file_id AND {_IN_SCOPE}{{share_file}}",
    "get_batch": f"SELECT {_columns(BATCH_COLUMNS)} FROM batches WHERE id = :id",
    "count_batches_by_status": "SELECT status, count(*) FROM batches GROUP BY status",
    "get_batch_in_scope": f"SELECT {_columns(BATCH_COLUMNS)} FROM batches WHERE id = :id AND {_IN_SCOPE}",
    "page_batches": f"SELECT {_columns(BATCH_COLUMNS)} FROM batches WHERE {_IN_SCOPE}{{where}} "
    "ORDER BY seq {order} LIMIT :limit",
    # Compare-and-set (I6); {assignments} sets the transition's changes and timestamp.
    "transition": "UPDATE batches SET status = :target{assignments} WHERE id = :id AND status = :expected",
    "insert_shard": _insert("shards", SHARD_COLUMNS),
    "delete_shards": "DELETE FROM shards WHERE batch_id = :batch_id",
    "delete_results": "DELETE FROM results WHERE batch_id = :batch_id",
    "batches_to_drive": f"SELECT id FROM batches WHERE (status IN ({_DRIVEN}) OR "
    f"(status = 'in_progress' AND expires_at <= :now)) AND {FREE_LEASE} ORDER BY seq",
    # the batch lease ------------------------------------------------------------------------
    "claim_batch": "UPDATE batches SET lease_owner = :worker_id, lease_expires_at = :until WHERE id = :id "
    "AND (lease_owner IS NULL OR lease_owner = :worker_id OR lease_expires_at < :now)",
    "renew_batch": "UPDATE batches SET lease_expires_at = :until WHERE id = :id AND lease_owner = :worker_id "
    "RETURNING status",
    "release_batch": "UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = :id AND lease_owner = :worker_id",
    "seal": "UPDATE batches SET sealed = 1 WHERE id = :id",
    "live_shards": f"SELECT count(*) FROM shards WHERE batch_id = :batch_id AND done = 0 AND {_LIVE}",
    # the leases of dead owners --------------------------------------------------------------
    "lease_owners": f"SELECT lease_owner FROM shards WHERE done = 0 AND {_LIVE} UNION "
    f"SELECT lease_owner FROM batches WHERE status IN ({_LEASED}) AND {_LIVE}",
    # {owners} is an IN list (Catalogue.in_list).
    "expire_shard_leases": "UPDATE shards SET lease_expires_at = 0 WHERE lease_owner IN ({owners}) "
    "AND lease_expires_at >= :now",
    "expire_batch_leases": "UPDATE batches SET lease_expires_at = 0 WHERE lease_owner IN ({owners}) "
    "AND lease_expires_at >= :now",
    # shard leases ---------------------------------------------------------------------------
    # The least recently served batch that has a free shard and may run one more; {skip} leaves out
    # the batches named (" AND b.id NOT IN (…)", or nothing).
    "claim_candidate": "SELECT b.id FROM batches b WHERE b.status = 'in_progress' AND b.sealed = 0 "
    "AND b.expires_at > :now "
    f"AND EXISTS (SELECT 1 FROM shards s WHERE s.batch_id = b.id AND s.done = 0 AND {FREE_LEASE}) "
    f"AND (SELECT count(*) FROM shards s WHERE s.batch_id = b.id AND {_PLACE}) "
    "< CASE WHEN b.max_concurrency < :per_batch THEN b.max_concurrency ELSE :per_batch END "
    "{skip} ORDER BY b.served_at, b.seq LIMIT 1",
    # Claimers of one batch queue on its row for a moment, so two cannot both take its last place.
    "lock_running_batch": "SELECT id FROM batches WHERE id = :batch_id AND status = 'in_progress' AND sealed = 0"
    "{lock_batch}",
    "batch_places": "SELECT max_concurrency, (SELECT count(*) FROM shards WHERE batch_id = :batch_id), "
    f"(SELECT count(*) FROM shards WHERE batch_id = :batch_id AND {_PLACE}) "
    "FROM batches WHERE id = :batch_id",
    "free_shard": f"SELECT {_columns(SPAN_COLUMNS)} FROM shards WHERE batch_id = :batch_id "
    f"AND done = 0 AND {FREE_LEASE} ORDER BY shard LIMIT 1{{lock_shard}}",
    "lease_shard": "UPDATE shards SET lease_owner = :worker_id, lease_expires_at = :until, handed_on = 0 "
    "WHERE batch_id = :batch_id AND shard = :shard",
    "serve_batch": "UPDATE batches SET served_at = :now WHERE id = :batch_id",
    "hand_on_shard": f"UPDATE shards SET handed_on = 1 WHERE {_FENCE} AND {_PLACE}",
    "keep_place": "UPDATE shards SET handed_on = 0 WHERE batch_id = :batch_id AND shard = :shard",
    "renew_shard": f"UPDATE shards SET lease_expires_at = :until WHERE {_FENCE} AND done = 0",
    "batch_status": "SELECT status, sealed FROM batches WHERE id = :batch_id",
    "release_shard": f"UPDATE shards SET lease_owner = NULL, lease_expires_at = NULL WHERE {_FENCE}",
    # The batch row first: finishers of one batch queue here, so the last one sees all the others.
    "lock_batch": "SELECT id FROM batches WHERE id = :batch_id{lock_batch}",
    "finish_shard": f"UPDATE shards SET done = 1, lease_owner = NULL, lease_expires_at = NULL "
    f"WHERE {_FENCE} AND done = 0",
    "open_shards": "SELECT count(*) FROM shards WHERE batch_id = :batch_id AND done = 0",
    "finalize": "UPDATE batches SET status = 'finalizing', finalizing_at = :now "
    "WHERE id = :batch_id AND status = 'in_progress' AND sealed = 0",
    # results --------------------------------------------------------------------------------
    "fence_shard": f"SELECT 1 FROM shards WHERE {_FENCE} AND done = 0{{fence_shard}}",
    # DO NOTHING: a row already recorded is the truth; a late duplicate must not count twice.
    "insert_result": _insert("results", RESULT_COLUMNS) + " ON CONFLICT DO NOTHING",
    # sealed = 0 is checked on the row as it is now: a seal that won the race rolls the commit back.
    "count_results": "UPDATE batches SET completed = completed + :completed, failed = failed + :failed, "
    "input_tokens = input_tokens + :input_tokens, output_tokens = output_tokens + :output_tokens, "
    "total_tokens = total_tokens + :total_tokens, cached_tokens = cached_tokens + :cached_tokens, "
    "reasoning_tokens = reasoning_tokens + :reasoning_tokens, duplicates_saved = duplicates_saved + :duplicates_saved "
    "WHERE id = :batch_id AND sealed = 0",
    "done_lines": "SELECT line FROM results WHERE batch_id = :batch_id AND line > :after AND line <= :last "
    "ORDER BY line LIMIT :limit",
    # Which of some lines (an IN list) have a result: a shard of a planned batch holds lines from all over the file.
    "done_among": "SELECT line FROM results WHERE batch_id = :batch_id AND line IN ({lines})",
    # An unfinished shard holding one of the lines first..last: one of them may still get a result.
    "unfinished_between": "SELECT 1 FROM shards WHERE batch_id = :batch_id AND done = 0 "
    "AND first_line <= :last AND last_line >= :first LIMIT 1",
    "results_page": f"SELECT {_columns(RESULT_ROW_COLUMNS)} FROM results WHERE batch_id = :batch_id AND line > :after "
    "ORDER BY line LIMIT :limit",
    # webhooks -------------------------------------------------------------------------------
    "insert_webhook": _insert("webhook_endpoints", WEBHOOK_COLUMNS),
    "list_webhooks": f"SELECT {_columns(WEBHOOK_COLUMNS)} FROM webhook_endpoints WHERE {_IN_SCOPE} ORDER BY seq",
    "delete_webhook": f"DELETE FROM webhook_endpoints WHERE id = :id AND {_IN_SCOPE}",
    # The outbox, written in a batch's terminal transition: the event, and a delivery to each endpoint
    # of the batch's scope whose comma-separated events match :listens (LIKE '%,batch.completed,%').
    "insert_event": "INSERT INTO webhook_events (id, type, batch_id, created_at) "
    "VALUES (:event_id, :type, :batch_id, :now)",
    "insert_deliveries": "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, next_attempt_at) "
    "SELECT :event_id, e.id, 'pending', :now FROM webhook_endpoints e JOIN batches b "
    "ON e.owner = b.owner AND e.on_behalf_of = b.on_behalf_of "
    "WHERE b.id = :batch_id AND (',' || e.events || ',') LIKE :listens",
    # Due deliveries, oldest events first; a courier skips those another has locked (lock_delivery).
    "due_deliveries": "SELECT d.event_id, d.endpoint_id, v.type, v.batch_id, v.created_at, e.url, e.secret, "
    "d.attempts FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id "
    "JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    f"WHERE d.state = 'pending' AND d.next_attempt_at <= :now AND {FREE_LEASE.replace('lease_', 'd.lease_')} "
    "ORDER BY v.seq LIMIT :limit{lock_delivery}",
    "lease_delivery": "UPDATE webhook_deliveries SET lease_owner = :worker_id, lease_expires_at = :until "
    "WHERE event_id = :event_id AND endpoint_id = :endpoint_id",
    # An attempt's outcome, by the lease holder only: a courier whose lease lapsed records nothing.
    "settle_delivery": "UPDATE webhook_deliveries SET state = :state, attempts = attempts + 1, "
    "next_attempt_at = :next_attempt_at, last_error = :last_error, lease_owner = NULL, lease_expires_at = NULL "
    "WHERE event_id = :event_id AND endpoint_id = :endpoint_id AND lease_owner = :worker_id AND state = 'pending'",
    # Events past their retry window with nothing left to send (their deliveries go with them).
    "sweep_events": "DELETE FROM webhook_events WHERE created_at < :before AND NOT EXISTS "
    "(SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id AND d.state = 'pending')",
    "deliveries_of_batch": "SELECT d.endpoint_id, v.id, v.type, d.state, d.attempts, d.last_error "
    "FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id WHERE v.batch_id = :batch_id "
    "ORDER BY v.seq, d.endpoint_id",
    # PostgreSQL only: advisory locks -------------------------------------------------------
    "lock_migrations": "SELECT pg_advisory_xact_lock(:key)",  # one migrating process at a time
    "hold_session_lock": "SELECT pg_advisory_lock(:lock_class, :key)",  # a worker's proof of life
    "try_session_lock": "SELECT pg_try_advisory_xact_lock(:lock_class, :key)",  # free once its session ended
}


class _Keep(dict):
    """Fills the fragments of a statement and leaves its runtime slots in place."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def pyformat(sql: str) -> str:
    """`:name` parameters as psycopg spells them: `%(name)s` (and a literal % doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def _same(sql: str) -> str:
    return sql


class Catalogue:
    """One backend's statements: its fragments filled in, its driver's parameter style.

    `catalogue["name"]` is a statement ready to run; `compose("name", slot=…)` one completed per call.
    """

    def __init__(self, fragments: dict[str, str], style: Callable[[str], str] = _same):
        if set(fragments) != set(FRAGMENTS):
            raise ValueError(f"a backend supplies exactly the fragments {FRAGMENTS}")
        self._templates = {name: sql.format_map(_Keep(fragments)) for name, sql in QUERIES.items()}
        self._style = style
        self._ready = {name: style(sql) for name, sql in self._templates.items()}
        self.compose = functools.lru_cache(maxsize=512)(self._compose)

    def __getitem__(self, name: str) -> str:
        return self._ready[name]

    def _compose(self, name: str, **slots: str) -> str:
        return self._style(self.template(name, **slots))

    def template(self, name: str, **slots: str) -> str:
        """A statement or piece with its runtime slots filled, parameters still `:name`: for a slot of another."""
        return self._templates[name].format(**slots)

    @staticmethod
    def in_list(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
        """`:prefix0, :prefix1…` for an IN list of `values` (to pass to compose), and their params."""
        params = {f"{prefix}{n}": value for n, value in enumerate(values)}
        return ", ".join(f":{name}" for name in params), params
