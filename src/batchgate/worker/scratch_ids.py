"""Re-exports batchgate/scratch_ids.py for worker/validate.py, whose imports change with its rewrite."""

from batchgate.scratch_ids import ScratchIds, UniqueIds, scratch_folder

__all__ = ["ScratchIds", "UniqueIds", "scratch_folder"]
