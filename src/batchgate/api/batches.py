"""/batches: create, get, list, cancel (retry: batch_retry.py; results: batch_results.py)."""

from __future__ import annotations

from aiohttp import web

from batchgate import ids
from batchgate.api.batch_plan import plan_of
from batchgate.api.middleware import not_found, unknown_cursor
from batchgate.api.services import services
from batchgate.api.wire import json_response, read_json, scope_of
from batchgate.domain.records import BatchRecord, list_page
from batchgate.domain.requests import INPUT_PURPOSE, parse_create_batch, parse_page
from batchgate.domain.status import CANCELLABLE, BatchStatus
from batchgate.domain.windows import window_seconds
from batchgate.errors import Conflict, InvalidRequest


async def create(request: web.Request) -> web.Response:
    svc, scope = services(request), scope_of(request)
    settings = svc.settings
    spec = parse_create_batch(
        await read_json(request), settings.default_max_concurrency, settings.max_concurrency_ceiling
    )
    file = await svc.store.get_file(scope, spec.input_file_id)
    if file is None:
        raise not_found("file", spec.input_file_id, "input_file_id")
    if file.purpose != INPUT_PURPOSE:
        raise InvalidRequest(
            f"File {file.id} has purpose {file.purpose!r}; a batch needs a file uploaded with purpose 'batch'.",
            param="input_file_id",
            code="invalid_file_purpose",
        )
    if spec.dry_run:  # the plan of the run, and no batch
        return json_response((await plan_of(svc, file, spec.endpoint)).to_wire() | {"input_file_id": file.id})
    now = svc.now()
    batch = BatchRecord(
        id=ids.batch_id(),
        scope=scope,
        endpoint=spec.endpoint,
        input_file_id=file.id,
        completion_window=spec.completion_window,
        status=BatchStatus.VALIDATING,
        created_at=now,
        expires_at=now + window_seconds(spec.completion_window, settings.completion_window_seconds),
        max_concurrency=spec.max_concurrency,
        metadata=spec.metadata,
        output_expires_seconds=spec.output_expires_seconds,
    )
    if not await svc.store.insert_batch(batch):
        raise not_found("file", spec.input_file_id, "input_file_id")  # deleted since it was read above
    svc.wake_worker()
    return json_response(batch.to_wire(now))


async def owned_batch(request: web.Request) -> BatchRecord:
    """The batch the path names, if the caller's scope owns it; 404 otherwise."""
    batch_id = request.match_info["batch_id"]
    batch = await services(request).store.get_batch(batch_id, scope_of(request))
    if batch is None:
        raise not_found("batch", batch_id, "batch_id")
    return batch


async def get(request: web.Request) -> web.Response:
    return json_response((await owned_batch(request)).to_wire(services(request).now()))


async def list_batches(request: web.Request) -> web.Response:
    svc, scope = services(request), scope_of(request)
    page = parse_page(request.query, with_order=True)
    if page.after and await svc.store.get_batch(page.after, scope) is None:
        raise unknown_cursor("batch", page.after)
    items, has_more = await svc.store.list_batches(scope, page)
    return json_response(list_page(items, has_more, svc.now()))


async def cancel(request: web.Request) -> web.Response:
    svc = services(request)
    batch = await owned_batch(request)
    # The worker may move the batch between our read and our write; retry on a lost compare-and-set.
    while batch.status in CANCELLABLE:
        if await svc.store.transition(batch.id, batch.status, BatchStatus.CANCELLING, svc.now()):
            svc.wake_worker()
        batch = await owned_batch(request)
    if batch.status not in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        raise Conflict(
            f"Cannot cancel batch {batch.id}: its status is '{batch.status.value}'.",
            param="batch_id",
            code="batch_not_cancellable",
        )
    return json_response(batch.to_wire(svc.now()))


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/batches", create)
    app.router.add_get(f"{prefix}/batches", list_batches)
    app.router.add_get(f"{prefix}/batches/{{batch_id}}", get)
    app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", cancel)
