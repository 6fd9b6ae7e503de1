-- What checking a batch input file's lines during its upload found, for a clean file only: every line
-- a good request for one endpoint, no custom_id twice. A batch over it skips its own validating pass
-- when the endpoint and the limits it was checked under (max_lines, max_line_bytes, shard_lines) match.
-- grains: where shards may start (first lines then byte offsets, little-endian int64).
CREATE TABLE file_summaries (
    file_id        TEXT PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    endpoint       TEXT NOT NULL,
    requests       BIGINT NOT NULL,
    last_line      BIGINT NOT NULL,
    model          TEXT,
    grains         BYTEA NOT NULL,
    max_lines      BIGINT NOT NULL,
    max_line_bytes BIGINT NOT NULL,
    shard_lines    BIGINT NOT NULL
);
