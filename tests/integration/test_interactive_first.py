"""Interactive traffic first, through a live gateway: a chat call is not queued behind a batch.

The gateway is told the mock upstream takes one request at a time (max_concurrency = 1) and a batch
keeps dozens of slow lines waiting at its door. What the mock upstream saw, in order, shows who the
gateway let in.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.lifecycle import chat_line, client, config, start_batch, texts_of, wait_status, wait_until


def slow_batch(api, seconds: float, lines: int = 40):
    """A batch whose every line keeps the upstream busy for `seconds`, all of it waiting at the door."""
    _, batch = start_batch(api, [chat_line(f"b{i}", f"batch {i} [sleep:{seconds}]") for i in range(lines)], lines)
    return batch


def ask(api, text: str) -> str:
    answer = api.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    return answer.choices[0].message.content or ""


def one_at_a_time(make_gateway, mock_upstream, headroom: int):
    return make_gateway(
        config({"name": "one", "base_url": mock_upstream.base_url, "max_concurrency": 1, "adaptive": False}),
        # No grace at the cancel that ends each test: its slow batch lines are let go at once.
        env={"BATCHGATE_INTERACTIVE_HEADROOM": str(headroom), "BATCHGATE_CANCEL_GRACE_SECONDS": "0"},
    )


def test_chat_calls_take_the_next_free_slot_before_waiting_batch_lines(make_gateway, mock_upstream):
    api = client(one_at_a_time(make_gateway, mock_upstream, headroom=0))
    batch = slow_batch(api, 3)
    wait_until(lambda: len(mock_upstream.requests()) >= 1, what="the first batch line at the upstream")

    # The first line holds the only slot for 3 s: the calls wait at the door with the batch's 39 other lines.
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda i: ask(api, f"call {i}"), range(3)))
    assert all(answers)

    texts = texts_of(mock_upstream.requests())
    assert texts[0].startswith("batch ")
    # Taking turns with the batch would have let a batch line in between each call (and 3 s apiece).
    assert sorted(texts[1:4]) == ["call 0", "call 1", "call 2"], texts[:6]
    assert api.batches.retrieve(batch.id).request_counts.completed <= 1
    api.batches.cancel(batch.id)
    wait_status(api, batch.id)


def test_a_chat_call_goes_past_a_full_upstream_within_the_headroom(make_gateway, mock_upstream):
    api = client(one_at_a_time(make_gateway, mock_upstream, headroom=2))
    batch = slow_batch(api, 6)  # the mock answers it before it is stopped
    wait_until(lambda: len(mock_upstream.requests()) >= 1, what="the first batch line at the upstream")

    assert ask(api, "call now")  # answered while the batch line holds the upstream's only slot

    texts = texts_of(mock_upstream.requests())
    assert len(texts) == 2 and texts[0].startswith("batch ") and texts[1] == "call now", texts
    assert api.batches.retrieve(batch.id).request_counts.completed == 0
    api.batches.cancel(batch.id)
    wait_status(api, batch.id)
