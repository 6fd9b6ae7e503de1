"""/files: upload (streamed to storage), list, get, delete, content (streamed back)."""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.parse
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from batchgate import ids, metrics
from batchgate.api.middleware import not_found, unknown_cursor
from batchgate.api.multipart import FormPart, FormReader, malformed
from batchgate.api.services import services
from batchgate.api.upload_check import UploadCheck
from batchgate.api.wire import json_response, scope_of, unreadable_body
from batchgate.domain.file_check import FileSummary
from batchgate.domain.records import FileRecord, list_page
from batchgate.domain.requests import (
    FILE_PURPOSES,
    INPUT_PURPOSE,
    ascii_integer,
    parse_expires_after,
    parse_page,
    parse_purpose,
    parse_sha256,
)
from batchgate.errors import InvalidRequest, PayloadTooLarge

log = logging.getLogger("batchgate.api")
MAX_FIELD_BYTES = 4096
MAX_FILES_PAGE = 10_000  # the MKA1 SDK asks for 10,000 by default
# Control characters, path separators, and bytes that were not UTF-8 (aiohttp keeps them as lone surrogates,
# which nothing can store or send again).
UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\\ud800-\udfff]")


@dataclass(frozen=True)
class StoredPart:
    key: str
    filename: str
    bytes: int
    sha256: str
    summary: FileSummary | None = None  # what checking the lines on the way in found, if the file is clean


async def upload(request: web.Request) -> web.Response:
    svc = services(request)
    limit = svc.settings.max_file_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(f"The upload is {request.content_length} bytes; the limit is {limit} bytes.")
    if not request.content_type.startswith("multipart/"):
        raise InvalidRequest(
            "Upload a file as multipart/form-data with fields 'purpose' and 'file'.", code="invalid_content_type"
        )
    fields, stored = await _receive_form(svc, request, limit)
    try:
        if stored is None:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        purpose = parse_purpose(fields.get("purpose"), (INPUT_PURPOSE,))
        now = svc.now()
        expires_at = now + (_expires_after(fields) or svc.settings.file_retention_seconds)
        record = FileRecord(
            stored.key,
            scope_of(request),
            stored.filename,
            purpose,
            stored.bytes,
            stored.sha256,
            stored.key,
            now,
            expires_at,
        )
        await svc.store.insert_file(record, stored.summary)
    except BaseException:
        if stored is not None:
            await svc.blobs.delete(stored.key)
        raise
    metrics.UPLOADS.inc()
    metrics.UPLOAD_BYTES.inc(record.bytes)
    return json_response(record.to_wire())


async def _receive_form(svc, request: web.Request, limit: int) -> tuple[dict[str, str], StoredPart | None]:
    """Text fields in memory, the file part streamed into storage. Nothing stays stored if this raises."""
    fields: dict[str, str] = {}
    stored: StoredPart | None = None
    try:
        reader = FormReader(request.content, request.headers.get(hdrs.CONTENT_TYPE, ""))
        while (part := await reader.next()) is not None:
            if part.content_type.lower().startswith("multipart/"):
                raise InvalidRequest("Nested multipart bodies are not supported.", code="invalid_multipart")
            if part.name == "file":
                if stored is not None:
                    raise InvalidRequest("Send exactly one 'file' part.", param="file", code="invalid_multipart")
                # Both SDKs send the purpose first: a wrong one is refused before the bytes are read, and a
                # batch input file's lines are checked as they arrive.
                checked = "purpose" in fields
                if checked:
                    parse_purpose(fields["purpose"], (INPUT_PURPOSE,))
                stored = await _store_part(svc, part, limit, checked)
            elif part.name:
                fields[part.name] = await _read_field(part)
    except BaseException as exc:
        if stored is not None:
            await svc.blobs.delete(stored.key)
        if isinstance(exc, web.RequestPayloadError):
            raise unreadable_body(exc) from None
        if isinstance(exc, (ValueError, HttpProcessingError)):  # the body stream's own faults
            raise malformed(str(exc)) from None
        raise
    return fields, stored


async def _store_part(svc, part: FormPart, limit: int, checked: bool) -> StoredPart:
    """Stream the part into storage; if `checked` (a batch input file), check its lines on the way."""
    filename = safe_filename(part.filename)
    key = ids.file_id()
    digest = hashlib.sha256()
    check = UploadCheck(svc.settings) if checked else None

    async def chunks():
        seen = 0
        while chunk := await part.read_chunk():
            seen += len(chunk)
            if seen > limit:
                raise PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.", param="file")
            digest.update(chunk)
            if check is not None:
                await check.feed(chunk)
            yield chunk

    try:
        size = await svc.blobs.write(key, chunks())
        summary = await check.summary() if check is not None else None
    finally:
        if check is not None:
            check.close()
    return StoredPart(key, filename, size, digest.hexdigest(), summary)


async def _read_field(part: FormPart) -> str:
    raw = await part.read_at_most(MAX_FIELD_BYTES)
    if raw is None:
        raise InvalidRequest(
            f"Form field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes.",
            param=part.name,
            code="invalid_multipart",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"Form field {part.name!r} is not UTF-8.", param=part.name, code="invalid_multipart"
        ) from None


def _expires_after(fields: dict[str, str]) -> int | None:
    if "expires_after[seconds]" not in fields and "expires_after[anchor]" not in fields:
        return None
    seconds = fields.get("expires_after[seconds]", "")
    number = ascii_integer(seconds)
    value = {
        "anchor": fields.get("expires_after[anchor]", "created_at"),
        "seconds": seconds if number is None else number,
    }
    return parse_expires_after(value, "expires_after")


def safe_filename(name: str | None) -> str:
    """The client's filename as metadata: no path, no control characters, bounded length."""
    if name is None or not name.strip() or name == "blob":
        raise InvalidRequest(
            "The 'file' part needs a filename (for example requests.jsonl).", param="file", code="missing_filename"
        )
    base = re.split(r"[/\\]", name)[-1]
    cleaned = UNSAFE_FILENAME.sub("_", base).strip()[:255]
    if not cleaned or cleaned in (".", ".."):
        raise InvalidRequest(f"The filename {name!r} is not usable.", param="file", code="invalid_filename")
    return cleaned


async def list_files(request: web.Request) -> web.Response:
    svc, query = services(request), request.query
    page = parse_page(query, with_order=True, max_limit=MAX_FILES_PAGE, default_limit=MAX_FILES_PAGE)
    if page.after and await svc.store.get_file(scope_of(request), page.after) is None:
        raise unknown_cursor("file", page.after)
    purpose = parse_purpose(query["purpose"], FILE_PURPOSES) if query.get("purpose") else None
    items, has_more = await svc.store.list_files(scope_of(request), page, purpose, parse_sha256(query.get("sha256")))
    return json_response(list_page(items, has_more))


async def _owned(request: web.Request) -> FileRecord:
    file_id = request.match_info["file_id"]
    file = await services(request).store.get_file(scope_of(request), file_id)
    if file is None:
        raise not_found("file", file_id, "file_id")
    return file


async def get_file(request: web.Request) -> web.Response:
    return json_response((await _owned(request)).to_wire())


async def delete_file(request: web.Request) -> web.Response:
    svc = services(request)
    file = await _owned(request)
    # The row goes first: it is what makes the file exist, and deleting it checks that no batch reads it.
    if await svc.store.delete_file(file.id) is None:
        raise not_found("file", file.id, "file_id")  # a concurrent delete won
    await svc.blobs.delete(file.storage_key)
    return json_response({"id": file.id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    file = await _owned(request)
    response = web.StreamResponse(
        headers={
            # Every purpose batchgate accepts or writes is JSONL, whatever the client called the file.
            "Content-Type": "application/jsonl",
            "Content-Length": str(file.bytes),
            "Content-Disposition": content_disposition(file.filename),
        }
    )
    await response.prepare(request)
    try:
        if request.method != "HEAD":
            async for chunk in svc.blobs.read(file.storage_key):
                await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        log.debug("client left during the download of %s", file.id)
    return response


def content_disposition(filename: str) -> str:
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", filename) or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(filename)}"


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/files", upload)
    app.router.add_get(f"{prefix}/files", list_files)
    app.router.add_get(f"{prefix}/files/{{file_id}}", get_file)
    app.router.add_delete(f"{prefix}/files/{{file_id}}", delete_file)
    app.router.add_get(f"{prefix}/files/{{file_id}}/content", file_content)
