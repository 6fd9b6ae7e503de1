"""Races decided by the database, hammered over raw HTTP against a live gateway: exactly one winner.

The upstream is slow, so every batch that is created stays unfinished for the whole test and
keeps its input file in use.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.contract.conftest import OPENAI, jsonl, request_line, upload_raw
from tests.support.servers import upstream_config

ROUNDS = 8
RACERS = 6  # of each kind per round


@pytest.fixture(scope="module")
def gateway(make_module_gateway, make_module_upstream):
    slow = make_module_upstream(latency=60)
    return make_module_gateway(upstream_config(("slow", slow.base_url, ["*"])))


async def _call(session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> tuple[int, dict]:
    async with session.request(method, url, **kwargs) as answer:
        return answer.status, await answer.json()


async def _rounds(gateway, obo: str, racers) -> list[list[tuple[str, int, dict]]]:
    """For each round: a fresh input file, then every racer's call at once; [(kind, status, body)]."""
    headers = {"Authorization": f"Bearer {gateway.key}", "X-On-Behalf-Of": obo}
    results = []
    async with aiohttp.ClientSession(gateway.url, headers=headers) as session:
        for round_ in range(ROUNDS):
            uploaded = upload_raw(gateway, jsonl([request_line(f"r{round_}", "hello")]), obo=obo)
            assert uploaded.status == 200, uploaded.body
            calls = racers(uploaded.json["id"])
            answers = await asyncio.gather(*(_call(session, method, url, **kw) for _, method, url, kw in calls))
            results.append([(kind, status, body) for (kind, *_), (status, body) in zip(calls, answers, strict=True)])
    return results


async def test_creating_a_batch_and_deleting_its_input_file_never_both_succeed(gateway, unique_obo):
    def racers(file_id: str):
        create = (
            "create",
            "POST",
            f"{OPENAI}/batches",
            {"json": {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}},
        )
        delete = ("delete", "DELETE", f"{OPENAI}/files/{file_id}", {})
        return [create, delete] * RACERS

    for round_, answers in enumerate(await _rounds(gateway, unique_obo, racers)):
        created = [body for kind, status, body in answers if kind == "create" and status == 200]
        deleted = [body for kind, status, body in answers if kind == "delete" and status == 200]
        assert not (created and deleted), f"round {round_}: {len(created)} creates and {len(deleted)} deletes won"
        assert len(deleted) <= 1, f"round {round_}: {len(deleted)} deletes of one file answered 200"
        for kind, status, body in answers:
            if status != 200:
                expected = {"create": {(404, "not_found")}, "delete": {(404, "not_found"), (409, "file_in_use")}}[kind]
                assert (status, body["error"]["code"]) in expected, (kind, status, body)
        for kind, status, body in answers:
            if kind == "delete" and status == 409:
                assert created and any(b["id"] in body["error"]["message"] for b in created), body


async def test_concurrent_deletes_of_one_file_answer_200_once_and_404_otherwise(gateway, unique_obo):
    def racers(file_id: str):
        return [("delete", "DELETE", f"{OPENAI}/files/{file_id}", {})] * (2 * RACERS)

    for round_, answers in enumerate(await _rounds(gateway, unique_obo, racers)):
        statuses = sorted(status for _, status, _ in answers)
        assert statuses == [200] + [404] * (2 * RACERS - 1), f"round {round_}: {statuses}"
        assert all(body["error"]["code"] == "not_found" for _, status, body in answers if status == 404)
