"""A Hypothesis state machine over four scopes of one live gateway: two owners × X-On-Behalf-Of (none, "alice").

Each step, a random scope uploads, creates, cancels, deletes, gets or downloads a random known object —
its own or another scope's. After every step: nobody sees what is not theirs (another scope's id answers
404 and the object stays intact; lists hold exactly the caller's own objects), and every batch that has
ended holds to I1–I2 (output ∪ error hold each input custom_id once; total = completed + failed = lines).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.contract.conftest import Reply, assert_error_reply, jsonl, parse_jsonl, request_line

PREFIX = "/v1"
TERMINAL = ("completed", "failed", "cancelled", "expired")
CANCELLED = ("cancelling", "cancelled")
# What a line asks the mock upstream for: a slow answer (time to cancel; first, as Hypothesis leans towards
# first choices), an answer, a refusal (it goes to the error file).
LINE_TEXTS = ("[sleep:0.5] slow one", "hello there", "[status:400] refused")
SETTLE_SECONDS = 20.0


@dataclass(frozen=True)
class Scope:
    owner: str  # which of the two keys
    obo: str | None

    def __str__(self) -> str:
        return f"{self.owner}/{self.obo or '-'}"


SCOPES = tuple(Scope(owner, obo) for owner in ("owner-a", "owner-b") for obo in (None, "alice"))


@dataclass
class KnownFile:
    id: str
    scope: Scope
    content: bytes
    deleted: bool = False


@dataclass
class KnownBatch:
    id: str
    scope: Scope
    input: KnownFile
    custom_ids: list[str]
    cancel_asked: bool = False
    checked: bool = False  # its end state has been held to I1–I2


@dataclass
class World:
    """What one example made, beside what each scope already had (earlier examples share the gateway).

    Each example picks only from its own objects, so Hypothesis can replay it the same way.
    """

    already: dict[Scope, tuple[set[str], set[str]]]  # scope → (file ids, batch ids) listed before the example
    files: dict[str, KnownFile] = field(default_factory=dict)
    batches: dict[str, KnownBatch] = field(default_factory=dict)

    def own_files(self, scope: Scope) -> set[str]:
        made = {f.id for f in self.files.values() if f.scope == scope and not f.deleted}
        return self.already[scope][0] | made

    def own_batches(self, scope: Scope) -> set[str]:
        return self.already[scope][1] | {b.id for b in self.batches.values() if b.scope == scope}


class Api:
    """Raw HTTP as one of the four scopes; a 5xx or a non-envelope error fails the step that got it."""

    def __init__(self, base_url: str, keys: dict[str, str]):
        self.base_url, self.keys = base_url, keys
        self.session = requests.Session()

    def call(self, scope: Scope, method: str, path: str, **kwargs) -> Reply:
        headers = {"Authorization": f"Bearer {self.keys[scope.owner]}"}
        if scope.obo is not None:
            headers["X-On-Behalf-Of"] = scope.obo
        answer = self.session.request(method, self.base_url + PREFIX + path, headers=headers, timeout=30, **kwargs)
        reply = Reply(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.content)
        assert reply.status < 500, f"{scope} {method} {path} answered {reply.status}: {reply.body[:300]!r}"
        if reply.status >= 400:
            assert_error_reply(reply, reply.status)
        return reply

    def expect(self, status: int, scope: Scope, method: str, path: str, **kwargs) -> Reply:
        reply = self.call(scope, method, path, **kwargs)
        assert reply.status == status, (
            f"{scope} {method} {path}: want {status}, got {reply.status}: {reply.body[:300]!r}"
        )
        return reply

    def listed(self, scope: Scope, path: str, **params) -> list[dict]:
        """Every item of a list, page by page."""
        items: list[dict] = []
        while True:
            page = self.expect(200, scope, "GET", path, params=params).json
            items += page["data"]
            if not page["has_more"]:
                return items
            params["after"] = page["last_id"]


class TenancyMachine(RuleBasedStateMachine):
    def __init__(self, api: Api, seen: Counter):
        super().__init__()
        self.api, self.seen = api, seen
        self.world = World({scope: self.listed_ids(scope) for scope in SCOPES})

    def listed_ids(self, scope: Scope) -> tuple[set[str], set[str]]:
        files = {f["id"] for f in self.api.listed(scope, "/files")}
        return files, {b["id"] for b in self.api.listed(scope, "/batches", limit="100")}

    # --- helpers ---------------------------------------------------------------------------------

    # Newest first: Hypothesis leans towards the first choices, and the newest objects are the ones in flight.
    def pick_file(self, data) -> KnownFile:
        return data.draw(st.sampled_from(list(reversed(self.world.files.values()))), label="file")

    def pick_batch(self, data) -> KnownBatch:
        return data.draw(st.sampled_from(list(reversed(self.world.batches.values()))), label="batch")

    @staticmethod
    def pick_stranger(data, owner: Scope) -> Scope:
        return data.draw(st.sampled_from([s for s in SCOPES if s != owner]), label="stranger")

    def upload_as(self, scope: Scope, texts: list[str]) -> KnownFile:
        content = jsonl(request_line(f"line-{i}", text) for i, text in enumerate(texts))
        reply = self.api.expect(
            200,
            scope,
            "POST",
            "/files",
            data={"purpose": "batch"},
            files={"file": ("in.jsonl", content, "application/jsonl")},
        )
        file = reply.json
        assert file["bytes"] == len(content) and file["purpose"] == "batch"
        known = self.world.files[file["id"]] = KnownFile(file["id"], scope, content)
        return known

    def create_as(self, scope: Scope, file: KnownFile) -> None:
        body = {"input_file_id": file.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        if scope != file.scope or file.deleted:
            self.api.expect(404, scope, "POST", "/batches", json=body)
            return
        batch = self.api.expect(200, scope, "POST", "/batches", json=body).json
        custom_ids = [line["custom_id"] for line in parse_jsonl(file.content)]
        known = KnownBatch(batch["id"], scope, file, custom_ids)
        self.world.batches[known.id] = known

    def owner_sees_file(self, file: KnownFile) -> None:
        """After someone else tried something on `file`, it is exactly as its owner left it."""
        if file.deleted:
            self.api.expect(404, file.scope, "GET", f"/files/{file.id}")
            return
        got = self.api.expect(200, file.scope, "GET", f"/files/{file.id}").json
        assert (got["id"], got["bytes"], got["purpose"]) == (file.id, len(file.content), "batch")
        assert self.api.expect(200, file.scope, "GET", f"/files/{file.id}/content").body == file.content

    # --- rules -----------------------------------------------------------------------------------

    @initialize(texts=st.lists(st.sampled_from(LINE_TEXTS), min_size=1, max_size=4))
    def every_scope_starts_a_batch(self, texts: list[str]):
        # Every example starts with an object of each scope, so the rules below have ids of all four to try.
        for scope in SCOPES:
            self.create_as(scope, self.upload_as(scope, texts))

    @rule(scope=st.sampled_from(SCOPES), texts=st.lists(st.sampled_from(LINE_TEXTS), min_size=1, max_size=4))
    def upload(self, scope: Scope, texts: list[str]):
        self.upload_as(scope, texts)

    @precondition(lambda self: self.world.files)
    @rule(data=st.data())
    def create_batch(self, data):
        file = self.pick_file(data)
        self.create_as(file.scope, file)

    @precondition(lambda self: self.world.batches)
    @rule(data=st.data())
    def cancel_batch(self, data):
        batch = self.pick_batch(data)
        reply = self.api.call(batch.scope, "POST", f"/batches/{batch.id}/cancel")
        if reply.status == 409:  # it is already being finalized, or has ended
            status = self.api.expect(200, batch.scope, "GET", f"/batches/{batch.id}").json["status"]
            assert status in ("finalizing", *TERMINAL), status
            return
        assert reply.status == 200, reply.body[:300]
        assert reply.json["status"] in CANCELLED, reply.json["status"]
        batch.cancel_asked = True
        self.seen["cancels accepted"] += 1

    @precondition(lambda self: self.world.files)
    @rule(data=st.data())
    def delete_file(self, data):
        file = self.pick_file(data)
        if file.deleted:
            self.api.expect(404, file.scope, "DELETE", f"/files/{file.id}")
            return
        reply = self.api.call(file.scope, "DELETE", f"/files/{file.id}")
        if reply.status == 409:
            # The input of a batch that has not ended is kept until it ends.
            assert reply.json["error"]["code"] == "file_in_use", reply.json
            assert any(b.input is file for b in self.world.batches.values()), f"{file.id} is no batch's input"
            self.owner_sees_file(file)
            return
        assert reply.status == 200, reply.body[:300]
        assert reply.json == {"id": file.id, "object": "file", "deleted": True}
        file.deleted = True
        self.seen["deleted"] += 1

    @precondition(lambda self: self.world.files)
    @rule(data=st.data())
    def read_file(self, data):
        file = self.pick_file(data)
        if file.deleted:
            self.api.expect(404, file.scope, "GET", f"/files/{file.id}/content")
        else:
            self.owner_sees_file(file)

    @precondition(lambda self: self.world.batches)
    @rule(data=st.data())
    def get_batch(self, data):
        batch = self.pick_batch(data)
        got = self.api.expect(200, batch.scope, "GET", f"/batches/{batch.id}").json
        assert (got["id"], got["input_file_id"]) == (batch.id, batch.input.id)

    @precondition(lambda self: self.world.files)
    @rule(data=st.data(), action=st.sampled_from(("get", "content", "delete", "create_batch")))
    def stranger_touches_file(self, data, action: str):
        file = self.pick_file(data)
        stranger = self.pick_stranger(data, file.scope)
        if action == "create_batch":
            self.create_as(stranger, file)  # someone else's input file: 404
        else:
            method, path = {
                "get": ("GET", f"/files/{file.id}"),
                "content": ("GET", f"/files/{file.id}/content"),
                "delete": ("DELETE", f"/files/{file.id}"),
            }[action]
            self.api.expect(404, stranger, method, path)
        self.owner_sees_file(file)

    @precondition(lambda self: self.world.batches)
    @rule(data=st.data(), action=st.sampled_from(("get", "cancel")))
    def stranger_touches_batch(self, data, action: str):
        batch = self.pick_batch(data)
        stranger = self.pick_stranger(data, batch.scope)
        method, path = ("GET", f"/batches/{batch.id}") if action == "get" else ("POST", f"/batches/{batch.id}/cancel")
        self.api.expect(404, stranger, method, path)
        # Whether the cancel was refused for good is seen in every later step: see check_batch.
        got = self.api.expect(200, batch.scope, "GET", f"/batches/{batch.id}").json
        assert batch.cancel_asked or got["status"] not in CANCELLED, got["status"]

    # --- after every step ----------------------------------------------------------------------------

    @invariant()
    def each_scope_lists_exactly_its_own(self):
        for scope in SCOPES:
            # Files first, then batches: a batch that ends in between shows its new files in the later list.
            files = {f["id"] for f in self.api.listed(scope, "/files")}
            batches = {b["id"]: b for b in self.api.listed(scope, "/batches", limit="100")}
            assert set(batches) == self.world.own_batches(scope), f"{scope} batches list"
            made_by_batches = {b[k] for b in batches.values() for k in ("output_file_id", "error_file_id") if b[k]}
            expected = self.world.own_files(scope)
            assert expected <= files, f"{scope} misses its own files {expected - files}"
            strangers = files - expected - made_by_batches
            assert not strangers, f"{scope} lists files that are not its own: {strangers}"
            for batch in batches.values():
                if batch["id"] in self.world.batches:
                    self.check_batch(self.world.batches[batch["id"]], batch)

    def check_batch(self, known: KnownBatch, wire: dict) -> None:
        if not known.cancel_asked:
            # Nobody else's cancel reached it (another scope's cancel answers 404 and must change nothing).
            assert wire["status"] not in CANCELLED, f"{known.id} is {wire['status']} though its owner never cancelled"
        if wire["status"] not in TERMINAL or known.checked:
            return
        # Every input file here is valid, and one in use cannot be deleted: no batch may fail.
        assert wire["status"] != "failed", f"{known.id} failed: {wire['errors']}"
        if known.cancel_asked:  # a cancel that was accepted has one way out: cancelling → cancelled
            assert wire["status"] == "cancelled", f"{known.id} was cancelled but ended {wire['status']}"
        self.check_i1_i2(known, wire)
        known.checked = True
        self.seen["ended " + wire["status"]] += 1

    def check_i1_i2(self, known: KnownBatch, wire: dict) -> None:
        output = self.result_lines(known, wire["output_file_id"])
        errors = self.result_lines(known, wire["error_file_id"])
        seen = Counter(line["custom_id"] for line in output + errors)
        assert seen == Counter(known.custom_ids), f"{known.id} ({wire['status']}): I1 broken, results {seen}"
        counts = wire["request_counts"]
        assert counts["total"] == counts["completed"] + counts["failed"] == len(known.custom_ids), (
            f"{known.id} ({wire['status']}): I2 broken, {counts} for {len(known.custom_ids)} lines"
        )
        assert (counts["completed"], counts["failed"]) == (len(output), len(errors)), (known.id, counts)

    def result_lines(self, known: KnownBatch, file_id: str | None) -> list[dict]:
        if file_id is None:
            return []
        content = self.api.expect(200, known.scope, "GET", f"/files/{file_id}/content").body
        # A batch's files belong to the batch's scope alone, like the files it was made from.
        for stranger in SCOPES:
            if stranger != known.scope:
                self.api.expect(404, stranger, "GET", f"/files/{file_id}")
                self.api.expect(404, stranger, "GET", f"/files/{file_id}/content")
        return parse_jsonl(content)

    def teardown(self):
        """Let this example's batches end, so each one is held to I1–I2 before the next example."""
        deadline = time.monotonic() + SETTLE_SECONDS
        for batch in self.world.batches.values():
            while True:
                wire = self.api.expect(200, batch.scope, "GET", f"/batches/{batch.id}").json
                if wire["status"] in TERMINAL:
                    self.check_batch(batch, wire)
                    break
                assert time.monotonic() < deadline, f"{batch.id} still {wire['status']} after {SETTLE_SECONDS}s"
                time.sleep(0.05)


@pytest.fixture(scope="module")
def api(module_gateway):
    keys = {"owner-a": module_gateway.key, "owner-b": module_gateway.create_key("b", owner="owner-b")}
    client = Api(module_gateway.url, keys)
    yield client
    client.session.close()


def test_scopes_stay_apart_and_batches_keep_i1_i2(api):
    seen: Counter = Counter()
    run_state_machine_as_test(
        lambda: TenancyMachine(api, seen),
        settings=settings(
            max_examples=8,
            stateful_step_count=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The run reached the interesting states, so its checks were not vacuous.
    assert seen["ended completed"] and seen["deleted"] and seen["ended cancelled"], seen
