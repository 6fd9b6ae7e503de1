"""batchgate.domain.responses: a /v1/responses body as chat messages, and a chat answer as a response."""

from __future__ import annotations

import pytest

from batchgate.domain.responses import chat_to_response, response_to_chat
from batchgate.errors import InvalidRequest


def test_a_string_input_is_one_user_message_and_instructions_the_system_one():
    chat = response_to_chat(
        {
            "model": "m",
            "input": "Hi",
            "instructions": "Be brief.",
            "max_output_tokens": 9,
            "temperature": 0,
            "metadata": {"k": "v"},
        }
    )
    assert chat == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0,
        "max_tokens": 9,
    }


def test_message_items_keep_their_roles_and_join_their_text_parts():
    chat = response_to_chat(
        {
            "input": [
                {"role": "developer", "content": "Rules."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "c"}]},
            ]
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "c"},
    ]


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": 7}, "input"),
        ({"input": "x", "instructions": 3}, "instructions"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}]},
            "input[0].content",
        ),
    ],
)
def test_what_a_text_model_cannot_take_is_refused_naming_the_field(body, param):
    with pytest.raises(InvalidRequest) as info:
        response_to_chat(body)
    assert info.value.param == param and info.value.status == 400


def chat_answer(text: str, finish: str = "stop") -> dict:
    return {
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def test_a_chat_answer_becomes_a_completed_response_with_output_text():
    response = chat_to_response(chat_answer("Hello there"), {"instructions": "Be brief."}, "smol")
    assert response["object"] == "response" and response["id"].startswith("resp_")
    assert response["status"] == "completed" and response["incomplete_details"] is None
    assert response["model"] == "smol" and response["instructions"] == "Be brief."
    [message] = response["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "output_text", "text": "Hello there", "annotations": []}]
    assert response["usage"]["input_tokens"] == 12 and response["usage"]["output_tokens"] == 5
    assert response["usage"]["total_tokens"] == 17


def test_a_chat_answer_cut_by_the_token_limit_is_an_incomplete_response():
    response = chat_to_response(chat_answer("Hel", "length"), {"max_output_tokens": 1}, "smol")
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_cached_prompt_tokens_of_the_chat_answer_become_the_response_s_cached_input_tokens():
    chat = chat_answer("Hi")
    chat["usage"]["prompt_tokens_details"] = {"cached_tokens": 9}
    assert chat_to_response(chat, {}, "smol")["usage"]["input_tokens_details"] == {"cached_tokens": 9}
    assert chat_to_response(chat_answer("Hi"), {}, "smol")["usage"]["input_tokens_details"] == {"cached_tokens": 0}
