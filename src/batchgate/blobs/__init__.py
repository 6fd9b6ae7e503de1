"""Blob stores for file bytes, chosen by BATCHGATE_STORAGE_URL: a folder, or s3://bucket/prefix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from batchgate.blobs.base import CHUNK, BlobStore
from batchgate.blobs.local import LocalBlobStore
from batchgate.errors import ConfigError

Opener = Callable[[str], BlobStore]


def _open_local(url: str) -> BlobStore:
    return LocalBlobStore(Path(url.removeprefix("file://")))


def _open_s3(url: str) -> BlobStore:
    from batchgate.blobs.s3 import S3BlobStore, parse_url

    return S3BlobStore(*parse_url(url))


STORES: dict[str, Opener] = {"file": _open_local, "s3": _open_s3}


def open_blobs(url: str) -> BlobStore:
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    opener = STORES.get(scheme)
    if opener is None:
        raise ConfigError(
            f"storage url {url!r}: unsupported scheme {scheme!r} (supported: a folder path, file://, s3://)"
        )
    return opener(url)


__all__ = ["CHUNK", "BlobStore", "open_blobs"]
