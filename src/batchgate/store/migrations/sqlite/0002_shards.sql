-- A running batch is cut into shards (line ranges) that workers lease one at a time.
CREATE TABLE shards (
    batch_id         TEXT NOT NULL,
    shard            INTEGER NOT NULL,
    first_line       BIGINT NOT NULL,
    last_line        BIGINT NOT NULL,
    start_offset     BIGINT NOT NULL,
    done             INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at DOUBLE PRECISION,
    PRIMARY KEY (batch_id, shard)
);
CREATE INDEX shards_open ON shards (done, batch_id);

-- sealed: no more results may be recorded (a cancel or expiry is being written out).
-- served_at: when a worker last claimed one of its shards (the least recently served goes first).
ALTER TABLE batches ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN served_at DOUBLE PRECISION NOT NULL DEFAULT 0;

-- Batches that were running before shards existed continue as one shard covering the whole file.
INSERT INTO shards (batch_id, shard, first_line, last_line, start_offset)
    SELECT id, 0, 1, 4611686018427387904, 0 FROM batches WHERE status IN ('in_progress', 'cancelling');
