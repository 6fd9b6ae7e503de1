"""The prefix-key rule: lines that start alike share a key, lines that do not, do not."""

from batchgate.domain.prefix import PREFIX_CHARS, prefix_key, prefix_material, prefix_tokens

CHAT = "/v1/chat/completions"
SYSTEM = {"role": "system", "content": "You classify reviews as positive or negative."}


def chat(*messages: dict, model: str = "m", **extra: object) -> dict:
    return {"model": model, "messages": list(messages), **extra}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_chat_lines_with_the_same_system_prompt_share_a_key_whatever_their_last_message():
    assert prefix_key(CHAT, chat(SYSTEM, user("great film"))) == prefix_key(CHAT, chat(SYSTEM, user("dull")))


def test_the_model_tools_and_leading_turns_all_name_the_group():
    base = prefix_key(CHAT, chat(SYSTEM, user("a")))
    assert prefix_key(CHAT, chat(SYSTEM, user("a"), model="other")) != base
    assert prefix_key(CHAT, chat(SYSTEM, user("a"), tools=[{"type": "function"}])) != base
    assert prefix_key(CHAT, chat({"role": "system", "content": "Other task."}, user("a"))) != base
    shot = [user("example"), {"role": "assistant", "content": "positive"}]
    assert prefix_key(CHAT, chat(SYSTEM, *shot, user("a"))) != base


def test_a_lone_message_is_grouped_by_the_head_of_its_text():
    instruction = "x" * PREFIX_CHARS
    assert prefix_key(CHAT, chat(user(instruction + "one"))) == prefix_key(CHAT, chat(user(instruction + "two")))
    assert prefix_key(CHAT, chat(user("short one"))) != prefix_key(CHAT, chat(user("short two")))


def test_responses_group_by_instructions_and_leading_input():
    responses = "/v1/responses"
    one = {"model": "m", "instructions": "Be brief.", "input": "first question"}
    two = {"model": "m", "instructions": "Be brief.", "input": [user("ctx"), user("second")]}
    three = {"model": "m", "instructions": "Be brief.", "input": [user("ctx"), user("third")]}
    assert prefix_key(responses, two) == prefix_key(responses, three)
    assert prefix_key(responses, one) != prefix_key(responses, two)


def test_embeddings_group_by_the_head_of_the_input():
    embeddings = "/v1/embeddings"
    head = "query: " + "y" * PREFIX_CHARS
    assert prefix_key(embeddings, {"model": "e", "input": head + "a"}) == prefix_key(
        embeddings, {"model": "e", "input": head + "b"}
    )


def test_a_body_without_a_prompt_has_no_key():
    assert prefix_key(CHAT, {"model": "m", "messages": []}) is None
    assert prefix_key("/v1/embeddings", {"model": "e", "input": ""}) is None
    assert prefix_material(CHAT, {"model": "m"}) is None


def test_prefix_tokens_follow_the_characters_per_token_rule():
    short = prefix_tokens(prefix_material(CHAT, chat(SYSTEM, user("a"))))
    longer = prefix_tokens(prefix_material(CHAT, chat(SYSTEM, user("b"), user("c"))))
    assert 0 < short < longer
