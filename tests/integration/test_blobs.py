"""The blob stores against real storage: a local folder and an S3-compatible server (moto, over HTTP)."""

from __future__ import annotations

import errno
import fcntl
import os
from itertools import islice

import pytest

from batchgate.blobs import open_blobs
from batchgate.blobs.base import chunk_sizes
from batchgate.blobs.local import DIRECT_BUFFER, BlobFile, LocalBlobStore
from batchgate.blobs.s3 import PART_BYTES, parse_url
from batchgate.errors import ConfigError

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
async def blobs(request, tmp_path, monkeypatch):
    if request.param == "local":
        store = open_blobs(str(tmp_path / "files"))
    else:
        server = request.getfixturevalue("s3_server")
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        store = open_blobs(server.bucket())
    yield store
    await store.close()


async def chunks_of(*pieces: bytes):
    for piece in pieces:
        yield piece


async def read_all(store, key: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, offset)])


async def test_small_blobs_round_trip_and_read_from_an_offset(blobs):
    assert await blobs.write("file-small", chunks_of(b"hello ", b"world\n")) == 12
    assert await read_all(blobs, "file-small") == b"hello world\n"
    assert await read_all(blobs, "file-small", 6) == b"world\n"
    assert await blobs.write("file-empty", chunks_of()) == 0
    assert await read_all(blobs, "file-empty") == b""


async def test_a_blob_bigger_than_a_part_streams_in_and_out_intact(blobs):
    pieces = [bytes([i]) * MIB for i in range(PART_BYTES // MIB + 3)]  # two parts on S3
    assert await blobs.write("file-big", chunks_of(*pieces)) == len(pieces) * MIB
    chunks = [chunk async for chunk in blobs.read("file-big")]
    assert max(len(c) for c in chunks) <= 2 * MIB, "reads stream in chunks, never the whole object"
    assert b"".join(chunks) == b"".join(pieces)
    tail = await read_all(blobs, "file-big", len(pieces) * MIB - 5)
    assert tail == bytes([len(pieces) - 1]) * 5


async def test_a_read_that_starts_small_doubles_up_to_a_chunk(blobs):
    data = bytes(range(256)) * (3 * MIB // 256)
    await blobs.write("file-grow", chunks_of(data))
    chunks = [chunk async for chunk in blobs.read("file-grow", 100, 64 * 1024)]
    assert b"".join(chunks) == data[100:]
    asked = list(islice(chunk_sizes(64 * 1024), len(chunks)))
    assert asked[:5] == [64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024, MIB]
    assert all(len(chunk) <= size for chunk, size in zip(chunks, asked, strict=True)), (
        "no read returns more than it asked for"
    )
    if isinstance(blobs, LocalBlobStore):  # a file answers every read in full
        assert [len(chunk) for chunk in chunks[:-1]] == asked[:-1]


async def test_a_failed_write_leaves_nothing_visible(blobs):
    async def breaks_after_a_part():
        for _ in range(PART_BYTES // MIB + 1):
            yield b"x" * MIB
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError):
        await blobs.write("file-half", breaks_after_a_part())
    with pytest.raises(FileNotFoundError):
        await read_all(blobs, "file-half")
    assert await blobs.sweep_partial(0) == 0, "the aborted upload left nothing behind to sweep"


async def test_missing_and_deleted_blobs_read_as_not_found(blobs):
    with pytest.raises(FileNotFoundError):
        await read_all(blobs, "file-never")
    await blobs.write("file-gone", chunks_of(b"bye"))
    await blobs.delete("file-gone")
    await blobs.delete("file-gone")  # deleting twice is fine
    with pytest.raises(FileNotFoundError):
        await read_all(blobs, "file-gone")


async def test_an_upload_a_crash_left_open_is_swept_on_s3(s3_server, monkeypatch):
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    url = s3_server.bucket("pre")
    bucket, prefix = parse_url(url)
    client = s3_server.client()
    client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/file-crashed")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/file-other")
    store = open_blobs(url)
    try:
        # (moto reports a fixed initiation date in 2010, so the age cut-off itself is not exercised here.)
        assert await store.sweep_partial(0) == 1
    finally:
        await store.close()
    left = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == ["elsewhere/file-other"], "only uploads under the store's prefix are its own"


def test_an_s3_url_must_name_a_bucket():
    assert parse_url("s3://bucket/some/prefix/") == ("bucket", "some/prefix")
    assert parse_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ConfigError, match="names no bucket"):
        parse_url("s3:///prefix")


def written_through(blob_file: BlobFile, pieces: list[bytes]) -> None:
    for piece in pieces:
        blob_file.write(piece)


PIECES = [bytes([i]) * (MIB // 3 + i) for i in range(20)]  # odd sizes: buffers fill and end inside pieces


def direct_writes_work(folder) -> bool:
    try:
        os.close(os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644))
    except OSError:
        return False
    return True


def test_a_local_blob_goes_around_the_page_cache_in_whole_buffers_and_stays_intact(tmp_path):
    if not direct_writes_work(tmp_path):
        pytest.skip("this filesystem takes no direct writes")
    blob = BlobFile(tmp_path / "blob")
    written_through(blob, PIECES)
    assert blob.direct, "whole buffers went to the disk directly"
    assert os.stat(tmp_path / "blob").st_size == sum(map(len, PIECES)) // DIRECT_BUFFER * DIRECT_BUFFER
    blob.sync_close()
    assert (tmp_path / "blob").read_bytes() == b"".join(PIECES), "the tail, shorter than a buffer, is written too"


@pytest.mark.parametrize("refused_at", ["open", "write"])
def test_a_filesystem_refusing_direct_writes_gets_the_blob_through_the_page_cache(tmp_path, monkeypatch, refused_at):
    """Some filesystems refuse O_DIRECT when the file is opened, others at its first write (EINVAL)."""
    real_open, real_write = os.open, os.write

    def refusing_open(path, flags, *mode):
        if refused_at == "open" and flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "direct I/O refused")
        return real_open(path, flags, *mode)

    def refusing_write(fd, data):
        if refused_at == "write" and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "direct I/O refused")
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "write", refusing_write)
    blob = BlobFile(tmp_path / "blob")
    written_through(blob, PIECES)
    assert not blob.direct
    blob.sync_close()
    assert (tmp_path / "blob").read_bytes() == b"".join(PIECES)


async def test_a_local_blob_of_any_size_reads_back_as_written(tmp_path):
    store = LocalBlobStore(tmp_path / "files")
    for size in (0, 1, 4095, 4096, DIRECT_BUFFER - 1, DIRECT_BUFFER, DIRECT_BUFFER + 1, 2 * DIRECT_BUFFER + 4097):
        data = os.urandom(size)
        pieces = [data[at : at + 700_001] for at in range(0, size, 700_001)]
        key = f"file-{size}"
        assert await store.write(key, chunks_of(*pieces)) == size
        assert await read_all(store, key) == data
