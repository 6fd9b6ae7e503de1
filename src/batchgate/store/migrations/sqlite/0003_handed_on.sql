-- handed_on: the shard has sent its last line and handed its lane (its window) on to the next
-- shard of its batch. While it awaits its last answers it holds none of the batch's places.
ALTER TABLE shards ADD COLUMN handed_on INTEGER NOT NULL DEFAULT 0;
