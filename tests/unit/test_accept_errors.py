"""accept() failing for want of descriptors is logged once per interval, never as a traceback per failure."""

from __future__ import annotations

import asyncio
import errno
import logging
import os

from batchgate.api.server import ACCEPT_OUT_OF_RESOURCES, quiet_accept_errors


def test_a_burst_of_accept_failures_is_one_line_without_traceback(caplog):
    async def burst() -> None:
        loop = asyncio.get_running_loop()
        quiet_accept_errors(loop)
        for _ in range(500):  # asyncio reports up to the listen backlog of these in one tick
            loop.call_exception_handler(
                {"message": ACCEPT_OUT_OF_RESOURCES, "exception": OSError(errno.EMFILE, os.strerror(errno.EMFILE))}
            )
        loop.call_exception_handler({"message": "something else"})  # still reaches asyncio's own handler

    with caplog.at_level(logging.INFO):
        asyncio.run(burst())
    accept_lines = [r for r in caplog.records if r.name == "batchgate.server"]
    assert len(accept_lines) == 1 and accept_lines[0].exc_info is None
    assert "Too many open files" in accept_lines[0].getMessage()
    assert any(r.name == "asyncio" and "something else" in r.getMessage() for r in caplog.records)
