"""Room kept aside beside the database, given up so that a file delete can commit on a full disk.

SQLite needs free space to delete a row: the change goes through its write-ahead log first. On a
full disk every write fails, deletes included, and the user could not free space through the API.
Keeping a small file of reserved space is the simplest thing that always works: deleting the blob
first instead would leave a listed file without its bytes whenever the row delete still failed.
"""

from __future__ import annotations

import os
from pathlib import Path

# A file delete writes a few dozen pages to the write-ahead log; this leaves room for many of them.
RESERVE_BYTES = 2 * 1024 * 1024


class SpaceReserve:
    def __init__(self, path: Path, size: int = RESERVE_BYTES):
        self.path, self.size = path, size
        self._held = path.exists() and path.stat().st_size >= size

    def release(self) -> bool:
        """Give the room back to the disk; False if there was none to give."""
        self._held = False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def restore(self) -> None:
        """Take the room again if the disk has it; while it is full, a later call tries again."""
        if self._held:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # blocks really allocated, not a sparse file
            finally:
                os.close(fd)
        except OSError:
            self.path.unlink(missing_ok=True)
            return
        self._held = True
