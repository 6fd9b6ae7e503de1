"""The plan before a run: lines, estimated input tokens, prefix groups and what a warm cache could skip."""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from batchgate.domain.limits import estimate_input_tokens
from batchgate.domain.plan import PlanTally
from batchgate.domain.prefix import prefix_key, prefix_material, prefix_tokens

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
SYSTEMS = [f"You are assistant number {i}. " + "Follow the rules. " * (i * 5) for i in range(6)]


def chat(system: str | None, question: str, model: str = "m") -> dict:
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": question}
    ]
    return {"model": model, "messages": messages}


def tally(bodies: list[dict], endpoint: str = CHAT, max_keys: int = 100_000) -> PlanTally:
    counting = PlanTally(endpoint, max_keys)
    for body in bodies:
        counting.add(body)
    return counting


def exact(bodies: list[dict], endpoint: str = CHAT) -> dict[str, int]:
    """The figures worked out the plain way, holding every key."""
    keys = [prefix_key(endpoint, body) for body in bodies]
    counts = Counter(key for key in keys if key is not None)
    shared = sum(
        min(prefix_tokens(prefix_material(endpoint, body)), estimate_input_tokens(body))
        for at, (key, body) in enumerate(zip(keys, bodies, strict=True))
        if key is not None and key in keys[:at]
    )
    return {
        "lines": len(bodies),
        "input_tokens": sum(map(estimate_input_tokens, bodies)),
        "prefix_keys": len(counts),
        "prefix_groups": sum(1 for n in counts.values() if n > 1),
        "lines_in_groups": sum(n for n in counts.values() if n > 1),
        "shared_prefix_tokens": shared,
    }


def figures(counting: PlanTally) -> dict[str, int]:
    plan = counting.plan()
    return {name: getattr(plan, name) for name in exact([])}


bodies_strategy = st.lists(
    st.builds(chat, st.sampled_from([*SYSTEMS, None]), st.sampled_from(["a", "bb", "why?", "x" * 40])),
    max_size=60,
)


def test_a_group_of_n_lines_with_a_prefix_of_p_tokens_could_skip_n_minus_1_times_p():
    bodies = [chat(SYSTEMS[3], f"question {i}: " + "why " * 30) for i in range(10)] + [chat(SYSTEMS[1], "alone")]
    plan = tally(bodies).plan()
    p = prefix_tokens(prefix_material(CHAT, bodies[0]))
    assert p > 10
    assert (plan.lines, plan.prefix_keys, plan.prefix_groups, plan.lines_in_groups) == (11, 2, 1, 10)
    assert plan.shared_prefix_tokens == 9 * p
    assert plan.input_tokens == sum(map(estimate_input_tokens, bodies))
    assert plan.shared_prefix_share == round(9 * p / plan.input_tokens, 4)
    assert not plan.approximate


def test_a_sibling_never_skips_more_than_its_own_prompt():
    # The prefix's size counts its JSON (domain/prefix.py), a line's input only its text: the smaller one holds.
    bodies = [chat(SYSTEMS[0], "a"), chat(SYSTEMS[0], "b")]
    assert prefix_tokens(prefix_material(CHAT, bodies[1])) > estimate_input_tokens(bodies[1])
    plan = tally(bodies).plan()
    assert plan.shared_prefix_tokens == estimate_input_tokens(bodies[1])


def test_lines_without_a_prompt_to_share_count_in_lines_and_tokens_but_in_no_group():
    bodies = [{"model": "m", "input": ""}, {"model": "m", "input": ""}]
    plan = tally(bodies, EMBEDDINGS).plan()
    assert (plan.lines, plan.prefix_keys, plan.prefix_groups, plan.shared_prefix_tokens) == (2, 0, 0, 0)
    assert plan.input_tokens == 2  # at least one token a line, as the rate limits count it


def test_the_wire_form_names_every_figure():
    wire = tally([chat(SYSTEMS[0], "q"), chat(SYSTEMS[0], "r")]).plan().to_wire()
    assert wire["object"] == "batch.plan" and wire["endpoint"] == CHAT
    assert wire["prefix_groups"] == 1 and wire["lines_in_groups"] == 2 and wire["approximate"] is False
    assert 0 < wire["shared_prefix_share"] <= 1


def test_raw_lines_are_read_for_their_body():
    line = {"custom_id": "a", "method": "POST", "url": CHAT, "body": chat(SYSTEMS[2], "q")}
    counting = PlanTally(CHAT)
    counting.add_lines([orjson.dumps(line), orjson.dumps({**line, "custom_id": "b"})])
    assert counting.plan().prefix_groups == 1


@given(bodies_strategy)
def test_with_room_for_every_key_the_figures_are_exact(bodies):
    counting = tally(bodies)
    assert figures(counting) == exact(bodies)
    assert not counting.plan().approximate
    assert 0 <= counting.plan().shared_prefix_share <= 1


@given(bodies_strategy, st.integers(min_value=1, max_value=4))
def test_with_too_few_keys_the_figures_err_on_one_side_and_say_so(bodies, max_keys):
    counting, truth = tally(bodies, max_keys=max_keys), exact(bodies)
    got = figures(counting)
    assert len(counting._counts) <= max_keys
    assert (got["lines"], got["input_tokens"]) == (truth["lines"], truth["input_tokens"])
    assert got["prefix_groups"] <= truth["prefix_groups"]
    assert got["lines_in_groups"] <= truth["lines_in_groups"]
    assert got["shared_prefix_tokens"] <= truth["shared_prefix_tokens"]
    assert truth["prefix_keys"] <= got["prefix_keys"] <= truth["lines"]
    if not counting.plan().approximate:
        assert got == truth
    if truth["prefix_keys"] <= max_keys:
        assert got == truth


def test_a_full_table_drops_one_off_keys_and_keeps_the_groups():
    groups = [chat(SYSTEMS[i], "q") for i in range(2)] * 2  # two groups, seen early
    one_offs = [chat(None, f"unique question {i}") for i in range(40)]
    later = [chat(SYSTEMS[0], "again"), chat(SYSTEMS[1], "again")]
    plan = tally(groups + one_offs + later, max_keys=8).plan()
    assert plan.approximate
    assert plan.prefix_groups == 2 and plan.lines_in_groups == 6
