"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph, …), through aiobotocore.

Credentials and region come from the usual AWS variables and files; AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3) points at another S3-compatible server. A write is one PUT when it is
small, otherwise a multipart upload of PART_BYTES parts that is completed only after its
last part, and aborted on any failure: a half-written object is never visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from batchgate.blobs.base import CHUNK, chunk_sizes
from batchgate.errors import ConfigError

PART_BYTES = 8 * 1024 * 1024  # S3 wants every part but the last to be at least 5 MiB
MISSING = {"NoSuchKey", "404", "NotFound"}


def parse_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix → (bucket, prefix without slashes at its ends)."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"storage url {url!r} names no bucket (s3://bucket/prefix)")
    return bucket, prefix.strip("/")


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str):
        self.bucket, self.prefix = bucket, prefix
        self._session = get_session()
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None  # aiobotocore's S3 client: built at run time, it ships no types
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        async with self._lock:  # one client, made in the event loop that uses it
            if self._client is None:
                endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
                region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
                # Servers behind an endpoint override (MinIO, Ceph, moto) rarely serve bucket subdomains.
                config = AioConfig(
                    s3={"addressing_style": "path"} if endpoint else {}, retries={"max_attempts": 5, "mode": "standard"}
                )
                self._client = await self._stack.enter_async_context(
                    self._session.create_client("s3", endpoint_url=endpoint, region_name=region, config=config)
                )
        return self._client

    def _key(self, key: str) -> str:
        # Keys are the server's own ("file-<hex>"), never a client's filename.
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid blob key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        s3, name = await self._s3(), self._key(key)
        buffer, size, upload_id = bytearray(), 0, None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= PART_BYTES:
                    if upload_id is None:
                        upload_id = (await s3.create_multipart_upload(Bucket=self.bucket, Key=name))["UploadId"]
                    parts.append(await self._part(s3, name, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                await s3.put_object(Bucket=self.bucket, Key=name, Body=bytes(buffer))
            else:
                if buffer:
                    parts.append(await self._part(s3, name, upload_id, len(parts) + 1, bytes(buffer)))
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id))
            raise
        return size

    async def _part(self, s3: Any, name: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        answer = await s3.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def read(self, key: str, offset: int = 0, first_chunk: int = CHUNK) -> AsyncGenerator[bytes, None]:
        s3 = await self._s3()
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in MISSING:
                raise FileNotFoundError(key) from None
            if code == "InvalidRange":
                return  # the offset is the end of the object
            raise
        body = answer["Body"]
        try:
            for size in chunk_sizes(first_chunk):
                if not (chunk := await body.read(size)):
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def sweep_partial(self, older_than: float) -> int:
        """Abort multipart uploads a crash left open (their parts cost storage but are never visible)."""
        s3, cutoff, aborted = await self._s3(), time.time() - older_than, 0
        prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = s3.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
