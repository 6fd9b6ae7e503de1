CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE files (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    owner        TEXT NOT NULL,
    on_behalf_of TEXT NOT NULL,
    filename     TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);
CREATE INDEX files_by_scope ON files (owner, on_behalf_of, seq);
CREATE INDEX files_by_expiry ON files (expires_at);

CREATE TABLE batches (
    seq                    INTEGER PRIMARY KEY AUTOINCREMENT,
    id                     TEXT NOT NULL UNIQUE,
    owner                  TEXT NOT NULL,
    on_behalf_of           TEXT NOT NULL,
    endpoint               TEXT NOT NULL,
    input_file_id          TEXT NOT NULL,
    completion_window      TEXT NOT NULL,
    status                 TEXT NOT NULL,
    max_concurrency        INTEGER NOT NULL,
    metadata               TEXT,
    output_expires_seconds BIGINT,
    output_file_id         TEXT,
    error_file_id          TEXT,
    errors                 TEXT,
    created_at             BIGINT NOT NULL,
    expires_at             BIGINT NOT NULL,
    in_progress_at         BIGINT,
    finalizing_at          BIGINT,
    completed_at           BIGINT,
    failed_at              BIGINT,
    expired_at             BIGINT,
    cancelling_at          BIGINT,
    cancelled_at           BIGINT,
    total                  BIGINT NOT NULL DEFAULT 0,
    completed              BIGINT NOT NULL DEFAULT 0,
    failed                 BIGINT NOT NULL DEFAULT 0,
    input_tokens           BIGINT NOT NULL DEFAULT 0,
    output_tokens          BIGINT NOT NULL DEFAULT 0,
    total_tokens           BIGINT NOT NULL DEFAULT 0,
    cached_tokens          BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens       BIGINT NOT NULL DEFAULT 0,
    model                  TEXT,
    lease_owner            TEXT,
    lease_expires_at       DOUBLE PRECISION
);
CREATE INDEX batches_by_scope ON batches (owner, on_behalf_of, seq);
CREATE INDEX batches_by_status ON batches (status);

-- One row per answered line, written in grouped commits while the batch runs.
-- A row here means "never send this line again" (invariant I3).
CREATE TABLE results (
    batch_id TEXT NOT NULL,
    line     INTEGER NOT NULL,
    ok       INTEGER NOT NULL,
    record   BLOB NOT NULL,
    PRIMARY KEY (batch_id, line)
) WITHOUT ROWID;
