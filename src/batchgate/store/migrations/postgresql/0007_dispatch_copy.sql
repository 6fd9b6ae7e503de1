-- dispatch_key: the blob of a batch's dispatch copy (its lines ordered by prefix group, each with its
-- line number), whose positions its shards count in. NULL when the batch is sent in file order.
ALTER TABLE batches ADD COLUMN dispatch_key TEXT;
-- grouped: some prefix group has two lines or more, so the batch's shards send each group's first line
-- ahead of its siblings. 0 when every line is a group of its own: its lines need no prefix keys at all.
ALTER TABLE batches ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0;
