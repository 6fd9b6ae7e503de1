"""GET /batches/{id}/results: the result lines recorded so far, as NDJSON in input order, each with its `line`.

While the batch runs they are read from the store's result rows, a page at a time, and a response
stops before the first line still to come (not recorded, in a shard not finished yet): lines finish
out of order across shards, and a client continuing from the last `line` it got must never pass
over one that is still to come. Once the
batch has ended (completed, cancelled, expired) the rows are gone and the same lines come from its
output and error files, matched with the input file. A response that finds the batch ended
midway carries on from the files.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from batchgate.api.batch_lines import finished_results
from batchgate.api.batches import owned_batch
from batchgate.api.services import Services, services
from batchgate.domain.records import BatchRecord
from batchgate.domain.requests import parse_results_page
from batchgate.domain.result_merge import with_line
from batchgate.domain.status import RESULTS_IN_FILES, TERMINAL

log = logging.getLogger("batchgate.api")
NDJSON = "application/x-ndjson"
STORE_PAGE = 500  # rows read from the store at once: what a response holds, whatever its limit
FLUSH_BYTES = 64 * 1024


async def results(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    batch = await owned_batch(request)
    page = parse_results_page(request.query)
    async with aclosing(_results(svc, batch, page.after, page.limit)) as lines:
        # The first line is read before the answer starts, so a refusal (input file deleted) is a JSON error.
        first = await anext(lines, None)
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        try:
            buffer = bytearray()
            if first is not None:
                buffer += with_line(first[1], first[0]) + b"\n"
            async for line, record in lines:
                buffer += with_line(record, line) + b"\n"
                if len(buffer) >= FLUSH_BYTES:
                    await response.write(bytes(buffer))
                    buffer.clear()
            await response.write(bytes(buffer))
            await response.write_eof()
        except ConnectionError:
            log.debug("client left during the results of %s", batch.id)
    return response


async def _results(
    svc: Services, batch: BatchRecord, after: int, limit: int
) -> AsyncGenerator[tuple[int, bytes], None]:
    sent = 0
    if batch.status not in RESULTS_IN_FILES:
        async with aclosing(_recorded(svc, batch, after, limit)) as rows:
            async for line, record in rows:
                yield line, record
                after, sent = line, sent + 1
        if sent == limit:
            return
        ended = await svc.store.get_batch(batch.id)  # it may have ended, and dropped its rows, as we read
        if ended is None or ended.status not in RESULTS_IN_FILES:
            return
        batch = ended
    async with aclosing(finished_results(svc, batch, after)) as lines:
        async for line, record in lines:
            if sent == limit:
                return
            yield line, record
            sent += 1


async def _recorded(
    svc: Services, batch: BatchRecord, after: int, limit: int
) -> AsyncGenerator[tuple[int, bytes], None]:
    """Result rows after line `after`; while the batch runs, only up to the first line still to come.

    A line without a result is still to come unless its shard has finished (then it is blank). A
    gap found settled is read again: a line recorded between the page and the check is in the new page.
    """
    contiguous = batch.status not in TERMINAL  # a failed batch's rows are all it will ever have
    next_line, left, settled = after + 1, limit, after  # lines up to `settled` need nothing more
    while left:
        asked = min(left, STORE_PAGE)
        rows = await svc.store.result_page(batch.id, next_line - 1, asked)
        for row in rows:
            if contiguous and row.line > next_line and row.line - 1 > settled:
                if not await svc.store.lines_settled(batch.id, *_spanned(batch, next_line, row.line - 1)):
                    return
                settled = row.line - 1
                break
            yield row.line, row.record
            next_line, left = row.line + 1, left - 1
        else:
            if len(rows) < asked:
                return


def _spanned(batch: BatchRecord, first: int, last: int) -> tuple[int, int]:
    """The shard positions that may hold lines first..last: a planned batch's shards count in its dispatch
    copy, where any shard may hold any line, so a gap is settled there once every shard has finished."""
    return (first, last) if batch.dispatch_key is None else (1, 2**62)


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_get(f"{prefix}/batches/{{batch_id}}/results", results)
