-- dispatch_key: the blob of a batch's dispatch copy (its lines ordered by prefix group, each with its
-- line number), whose positions its shards count in. NULL when the batch is sent in file order.
ALTER TABLE batches ADD COLUMN dispatch_key TEXT;
