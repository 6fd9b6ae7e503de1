-- duplicates_saved: lines of a batch answered by a byte-identical repeat's answer instead of being sent.
-- A batch opts in with the metadata key batchgate_deduplicate set to "true" (domain/duplicates.py).
ALTER TABLE batches ADD COLUMN duplicates_saved INTEGER NOT NULL DEFAULT 0;
