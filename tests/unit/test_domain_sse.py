"""batchgate.domain.sse: naming the events of a stream for MKA1's stream path, whatever the byte pieces."""

from __future__ import annotations

import pytest

from batchgate.domain.sse import NamedEvents

STREAM = (b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
          b'data: {"choices":[{"delta":{"content":" there"}}]}\r\n\r\n'
          b'data: {"error":{"message":"boom"}}\n\n'
          b": a comment\n\n"
          b"data: [DONE]\n\n")
NAMED = (b'event: message\ndata: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
         b'event: message\ndata: {"choices":[{"delta":{"content":" there"}}]}\n\n'
         b'event: error\ndata: {"error":{"message":"boom"}}\n\n'
         b": a comment\n\n"
         b"event: done\ndata: [DONE]\n\n")


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_events_are_named_whatever_the_pieces(size):
    names = NamedEvents()
    out = b"".join(names.feed(STREAM[i:i + size]) for i in range(0, len(STREAM), size)) + names.end()
    assert out == NAMED


def test_an_event_that_has_a_name_keeps_it_and_a_last_event_without_blank_line_is_flushed():
    names = NamedEvents()
    assert names.feed(b"event: ping\ndata: 1\n\ndata: [DONE]") == b"event: ping\ndata: 1\n\n"
    assert names.end() == b"event: done\ndata: [DONE]\n\n"
    assert names.end() == b""
