"""Blob stores for file bytes, chosen by BATCHGATE_STORAGE_URL (a folder for now)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from batchgate.blobs.base import CHUNK, BlobStore
from batchgate.blobs.local import LocalBlobStore
from batchgate.errors import ConfigError

Opener = Callable[[str], BlobStore]


def _open_local(url: str) -> BlobStore:
    return LocalBlobStore(Path(url.removeprefix("file://")))


STORES: dict[str, Opener] = {"file": _open_local}


def open_blobs(url: str) -> BlobStore:
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    opener = STORES.get(scheme)
    if opener is None:
        raise ConfigError(f"storage url {url!r}: unsupported scheme {scheme!r} (supported: a folder path)")
    return opener(url)


__all__ = ["CHUNK", "BlobStore", "open_blobs"]
