"""Auth, tenancy (owner + X-On-Behalf-Of) and HTTP error behaviour, over plain HTTP and both SDKs."""

from __future__ import annotations

import http.client as http_client
import json
import socket
import time
import uuid

import openai
import pytest
from mka1 import SDK
from mka1 import errors as mka1_errors
from openai import OpenAI

from tests.contract.conftest import (
    MKA1,
    OPENAI,
    assert_error_reply,
    create_batch_raw,
    http,
    jsonl,
    multipart,
    request_line,
    run_batch_raw,
    serve_log,
    upload_raw,
    wait_batch_raw,
)

PREFIXES = pytest.mark.parametrize("prefix", [MKA1, OPENAI], ids=["mka1", "openai"])
MISSING_BATCH = "batch_" + "f" * 32
MISSING_FILE = "file-" + "f" * 32


@pytest.fixture(scope="module")
def gw(module_gateway):
    return module_gateway


@pytest.fixture
def obo() -> str:
    return "ten-" + uuid.uuid4().hex[:12]


def one_line(text: str = "hi") -> bytes:
    return jsonl([request_line("x", text)])


def read_paths(prefix: str, file_id: str, batch_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"{prefix}/files"),
        ("GET", f"{prefix}/files/{file_id}"),
        ("GET", f"{prefix}/files/{file_id}/content"),
        ("GET", f"{prefix}/batches"),
        ("GET", f"{prefix}/batches/{batch_id}"),
    ]


# --- auth --------------------------------------------------------------------------------------------


def test_healthz_needs_no_key(gw):
    reply = http(gw, "GET", "/healthz", key=None)
    assert reply.status == 200


@PREFIXES
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer bg-unknown-key", "Bearer ", "Basic dXNlcjpwYXNz", "bg-no-scheme", "Bearer  "],
    ids=["none", "unknown", "empty", "basic", "no-scheme", "blank"],
)
def test_missing_or_unknown_key_is_401_everywhere(gw, prefix, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    calls = [
        *read_paths(prefix, MISSING_FILE, MISSING_BATCH),
        ("POST", f"{prefix}/batches"),
        ("POST", f"{prefix}/batches/{MISSING_BATCH}/cancel"),
        ("DELETE", f"{prefix}/files/{MISSING_FILE}"),
        ("POST", f"{prefix}/files"),
    ]
    for method, path in calls:
        body = b"{}" if method == "POST" else None
        reply = http(gw, method, path, key=None, headers=headers, body=body)
        error = assert_error_reply(reply, 401)
        assert error["type"] == "authentication_error", (method, path, error)


def test_a_key_works_until_revoked(gw):
    key = gw.create_key("short-lived", owner=gw_owner(gw))
    assert http(gw, "GET", f"{OPENAI}/files", key=key).status == 200
    result = gw.cli("keys", "revoke", "short-lived")
    assert result.returncode == 0, result.stderr
    for prefix in (MKA1, OPENAI):
        assert_error_reply(http(gw, "GET", f"{prefix}/files", key=key), 401)
        assert_error_reply(http(gw, "GET", f"{prefix}/batches", key=key), 401)
    # Revoking one key leaves the others working.
    assert http(gw, "GET", f"{OPENAI}/files").status == 200


def gw_owner(gw) -> str:
    # The fixture's key was made with `keys create --name test` and no --owner: its owner is its name.
    return "test"


def test_sdks_report_401(gw):
    with (
        OpenAI(base_url=gw.url + "/v1", api_key="bg-wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.batches.list()
    with SDK(bearer_auth="bg-wrong", server_url=gw.url, retry_config=None) as sdk:
        with pytest.raises(mka1_errors.SDKDefaultError) as caught:
            sdk.llm.batches.list()
        assert caught.value.status_code == 401
        with pytest.raises(mka1_errors.GetFileContentUnauthorizedError):
            sdk.llm.files.content(file_id=MISSING_FILE)


# --- tenancy ---------------------------------------------------------------------------------------


@pytest.fixture
def alice_a(gw, obo):
    """A file and a completed batch made by the fixture key with X-On-Behalf-Of = obo."""
    uploaded = upload_raw(gw, one_line("tenant data"), obo=obo)
    assert uploaded.status == 200
    file_id = uploaded.json["id"]
    batch = run_batch_raw(gw, one_line("tenant batch"), obo=obo)
    assert batch["status"] == "completed"
    return {
        "file": file_id,
        "batch": batch["id"],
        "output": batch["output_file_id"],
        "batch_input": batch["input_file_id"],
    }


def assert_invisible(gw, objects: dict, *, key=None, obo: str | None) -> None:
    """Every object in `objects` is a 404 on get/content/delete/cancel and absent from lists, for this caller."""
    kwargs = {"obo": obo} if key is None else {"obo": obo, "key": key}
    for prefix in (MKA1, OPENAI):
        for name in ("file", "output", "batch_input"):
            file_id = objects[name]
            assert_error_reply(http(gw, "GET", f"{prefix}/files/{file_id}", **kwargs), 404)
            assert_error_reply(http(gw, "GET", f"{prefix}/files/{file_id}/content", **kwargs), 404)
            assert_error_reply(http(gw, "DELETE", f"{prefix}/files/{file_id}", **kwargs), 404)
        assert_error_reply(http(gw, "GET", f"{prefix}/batches/{objects['batch']}", **kwargs), 404)
        assert_error_reply(http(gw, "POST", f"{prefix}/batches/{objects['batch']}/cancel", **kwargs), 404)
        files = http(gw, "GET", f"{prefix}/files", **kwargs).json["data"]
        assert not {f["id"] for f in files} & {objects["file"], objects["output"], objects["batch_input"]}
        batches = http(gw, "GET", f"{prefix}/batches?limit=100", **kwargs).json["data"]
        assert objects["batch"] not in {b["id"] for b in batches}
        # Nor can the caller build on them.
        assert_error_reply(create_batch_raw(gw, objects["file"], prefix=prefix, **kwargs), (400, 404))


def assert_visible(gw, objects: dict, *, obo: str | None, key=None) -> None:
    kwargs = {"obo": obo} if key is None else {"obo": obo, "key": key}
    for prefix in (MKA1, OPENAI):
        assert http(gw, "GET", f"{prefix}/files/{objects['file']}", **kwargs).status == 200
        assert http(gw, "GET", f"{prefix}/batches/{objects['batch']}", **kwargs).status == 200
        assert http(gw, "GET", f"{prefix}/files/{objects['output']}/content", **kwargs).status == 200
        ids = {f["id"] for f in http(gw, "GET", f"{prefix}/files", **kwargs).json["data"]}
        assert {objects["file"], objects["output"], objects["batch_input"]} <= ids
        assert objects["batch"] in {b["id"] for b in http(gw, "GET", f"{prefix}/batches", **kwargs).json["data"]}


def test_other_on_behalf_of_values_see_nothing(gw, obo, alice_a):
    assert_visible(gw, alice_a, obo=obo)
    for other in (obo + "x", obo.upper(), "b", None):
        assert_invisible(gw, alice_a, obo=other)
    # The attempts to delete and cancel did nothing.
    assert_visible(gw, alice_a, obo=obo)


def test_objects_made_without_on_behalf_of_are_invisible_with_one(gw, obo):
    uploaded = upload_raw(gw, one_line("no header"))
    assert uploaded.status == 200
    file_id = uploaded.json["id"]
    assert http(gw, "GET", f"{OPENAI}/files/{file_id}").status == 200
    assert_error_reply(http(gw, "GET", f"{OPENAI}/files/{file_id}", obo=obo), 404)
    assert file_id not in {f["id"] for f in http(gw, "GET", f"{OPENAI}/files", obo=obo).json["data"]}


def test_a_key_of_another_owner_sees_nothing(gw, obo, alice_a):
    bob = gw.create_key("bob-" + uuid.uuid4().hex[:6])
    for other in (obo, None, "b"):
        assert_invisible(gw, alice_a, key=bob, obo=other)
    # Bob's own objects stay his: the fixture key cannot see them either.
    bobs = upload_raw(gw, one_line("bob's"), obo=obo, key=bob)
    assert bobs.status == 200
    assert_error_reply(http(gw, "GET", f"{OPENAI}/files/{bobs.json['id']}", obo=obo), 404)
    assert http(gw, "GET", f"{OPENAI}/files/{bobs.json['id']}", obo=obo, key=bob).status == 200
    assert_visible(gw, alice_a, obo=obo)


def test_keys_with_the_same_owner_share_objects(gw, obo):
    team = "team-" + uuid.uuid4().hex[:6]
    first = gw.create_key(team + "-k1", owner=team)
    second = gw.create_key(team + "-k2", owner=team)
    uploaded = upload_raw(gw, one_line("shared"), obo=obo, key=first)
    assert uploaded.status == 200
    file_id = uploaded.json["id"]
    assert http(gw, "GET", f"{OPENAI}/files/{file_id}", obo=obo, key=second).json["id"] == file_id
    # The second key builds a batch on the first key's file; the first key sees and can cancel/read it.
    created = create_batch_raw(gw, file_id, obo=obo, key=second)
    assert created.status == 200, created.body
    done = wait_batch_raw(gw, created.json["id"], obo=obo, key=second)
    assert done["status"] == "completed"
    seen_by_first = http(gw, "GET", f"{MKA1}/batches/{created.json['id']}", obo=obo, key=first)
    assert seen_by_first.status == 200 and seen_by_first.json["output_file_id"] == done["output_file_id"]
    assert http(gw, "GET", f"{MKA1}/files/{done['output_file_id']}/content", obo=obo, key=first).status == 200
    # But the team's objects are not the fixture key's.
    assert_error_reply(http(gw, "GET", f"{OPENAI}/files/{file_id}", obo=obo), 404)


def test_tenancy_through_both_sdks(gw, obo, alice_a):
    with SDK(bearer_auth=gw.key, server_url=gw.url, retry_config=None) as sdk:
        assert sdk.llm.batches.get(batch_id=alice_a["batch"], x_on_behalf_of=obo).id == alice_a["batch"]
        with pytest.raises(mka1_errors.SDKDefaultError) as caught:
            sdk.llm.batches.get(batch_id=alice_a["batch"], x_on_behalf_of="someone-else")
        assert caught.value.status_code == 404
        with pytest.raises(mka1_errors.GetFileContentNotFoundError):
            sdk.llm.files.content(file_id=alice_a["output"])
        assert alice_a["batch"] not in {b.id for b in sdk.llm.batches.list(x_on_behalf_of="someone-else").data}
    with OpenAI(base_url=gw.url + "/v1", api_key=gw.key, max_retries=0) as client:
        with pytest.raises(openai.NotFoundError):
            client.batches.retrieve(alice_a["batch"])
        with pytest.raises(openai.NotFoundError):
            client.files.delete(alice_a["file"])
        assert alice_a["file"] not in {f.id for f in client.files.list()}


# --- HTTP errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/nope", "/api/v1/llm/nope", "/v2/batches", "/v1/files/x/y/z", "/v1/batches/x/resume", "/"]
)
def test_unknown_route_is_404_json(gw, path):
    assert_error_reply(http(gw, "GET", path), 404)
    assert_error_reply(http(gw, "POST", path, body={}), 404)


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "/v1/batches"),
        ("PUT", "/v1/files"),
        ("PATCH", "/v1/batches/x"),
        ("DELETE", "/api/v1/llm/batches/x"),
        ("GET", "/v1/batches/x/cancel"),
        ("GET", "/v1/batches/x/retry"),
        ("POST", "/api/v1/llm/batches/x/results"),
        ("POST", "/api/v1/llm/files/x"),
    ],
)
def test_wrong_method_is_405_json(gw, method, path):
    assert_error_reply(http(gw, method, path), 405)


def test_wrong_method_names_the_allowed_methods(gw):
    reply = http(gw, "DELETE", "/v1/batches")
    assert reply.status == 405
    allowed = {m.strip() for m in reply.headers.get("allow", "").split(",") if m.strip()}
    assert {"GET", "POST"} <= allowed


@PREFIXES
@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"   ", b"[1, 2]", b'"text"', b"null", b"\xff\xfe{}"],
    ids=["broken", "empty", "blank", "array", "string", "null", "binary"],
)
def test_create_with_an_invalid_json_body_is_400(gw, prefix, raw):
    reply = http(gw, "POST", f"{prefix}/batches", body=raw, content_type="application/json")
    assert_error_reply(reply, 400)


@PREFIXES
def test_create_with_invalid_fields_is_400(gw, obo, prefix):
    file_id = upload_raw(gw, one_line(), obo=obo).json["id"]
    bad_bodies = [
        {"endpoint": "/v1/chat/completions", "completion_window": "24h"},
        {"input_file_id": file_id, "completion_window": "24h"},
        {"input_file_id": file_id, "endpoint": "/v1/completions", "completion_window": "24h"},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "8d"},
        {"input_file_id": 7, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": {"k": 1}},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": ["k"]},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": {"k" * 65: "v"}},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": {"k": "v" * 513}},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "max_concurrency": "5"},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "max_concurrency": 2.5},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "max_concurrency": True},
        {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "max_concurrency": 1025},
    ]
    for body in bad_bodies:
        assert_error_reply(http(gw, "POST", f"{prefix}/batches", body=body, obo=obo), 400)
    assert http(gw, "GET", f"{prefix}/batches", obo=obo).json["data"] == [], "no rejected create left a batch"


@PREFIXES
def test_unknown_ids_are_404(gw, prefix):
    for method, path in [
        ("GET", f"{prefix}/batches/{MISSING_BATCH}"),
        ("POST", f"{prefix}/batches/{MISSING_BATCH}/cancel"),
        ("GET", f"{prefix}/batches/not-even-an-id"),
        ("GET", f"{prefix}/files/{MISSING_FILE}"),
        ("GET", f"{prefix}/files/{MISSING_FILE}/content"),
        ("DELETE", f"{prefix}/files/{MISSING_FILE}"),
        ("GET", f"{prefix}/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        ("GET", f"{prefix}/files/{'x' * 3000}"),
    ]:
        assert_error_reply(http(gw, method, path), 404)
    reply = create_batch_raw(gw, MISSING_FILE, prefix=prefix)
    error = assert_error_reply(reply, (400, 404))
    assert error["param"] == "input_file_id"


def test_content_404_keeps_a_null_code_for_the_mka1_sdk(gw):
    # The MKA1 SDK types this route's error code as an integer; an OpenAI-style string breaks its parsing.
    error = assert_error_reply(http(gw, "GET", f"{MKA1}/files/{MISSING_FILE}/content"), 404)
    assert error["code"] is None or isinstance(error["code"], int)
    with (
        SDK(bearer_auth=gw.key, server_url=gw.url, retry_config=None) as sdk,
        pytest.raises(mka1_errors.GetFileContentNotFoundError),
    ):
        sdk.llm.files.content(file_id=MISSING_FILE)


@PREFIXES
def test_cancel_a_finished_batch_is_409(gw, obo, prefix):
    done = run_batch_raw(gw, one_line("finished"), obo=obo)
    assert done["status"] == "completed"
    error = assert_error_reply(http(gw, "POST", f"{prefix}/batches/{done['id']}/cancel", obo=obo), 409)
    assert error["type"] == "invalid_request_error"
    assert http(gw, "GET", f"{prefix}/batches/{done['id']}", obo=obo).json["status"] == "completed"

    failed = run_batch_raw(gw, b"{broken\n", obo=obo)
    assert failed["status"] == "failed"
    assert_error_reply(http(gw, "POST", f"{prefix}/batches/{failed['id']}/cancel", obo=obo), 409)


@PREFIXES
def test_create_from_an_output_file_is_400(gw, obo, prefix):
    done = run_batch_raw(gw, one_line("make output"), obo=obo)
    output = http(gw, "GET", f"{prefix}/files/{done['output_file_id']}", obo=obo).json
    assert output["purpose"] == "batch_output"
    error = assert_error_reply(create_batch_raw(gw, output["id"], prefix=prefix, obo=obo), 400)
    assert error["param"] == "input_file_id"


@PREFIXES
@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5"])
def test_batches_list_rejects_bad_limits(gw, prefix, query):
    assert_error_reply(http(gw, "GET", f"{prefix}/batches?{query}"), 400)


@PREFIXES
@pytest.mark.parametrize("query", ["order=sideways", "limit=0", "limit=10001", "purpose=nonsense", "sha256=xyz"])
def test_files_list_rejects_bad_parameters(gw, prefix, query):
    assert_error_reply(http(gw, "GET", f"{prefix}/files?{query}"), 400)


@pytest.mark.parametrize("value", ["x" * 300, "tab\there", "ünïcode"], ids=["too-long", "control", "non-ascii"])
def test_a_malformed_on_behalf_of_header_is_a_4xx_not_a_5xx(gw, value):
    raw_value = value.encode("utf-8").decode("latin-1")  # http.client sends header text as latin-1 bytes
    reply = http(gw, "GET", f"{OPENAI}/files", headers={"X-On-Behalf-Of": raw_value})
    assert_error_reply(reply, 400)


def test_odd_requests_never_get_a_5xx(gw, obo):
    body, ctype = multipart([("purpose", None, b"batch", None), ("file", "a.jsonl", b"{}\n", None)])
    odd = [
        ("POST", f"{OPENAI}/files", b"--nope\r\n\r\n", "multipart/form-data; boundary=nope"),
        ("POST", f"{OPENAI}/files", body[:40], ctype),
        ("POST", f"{OPENAI}/files", b"", "multipart/form-data"),
        ("POST", f"{OPENAI}/batches", b'{"input_file_id": null, "endpoint": null}', "application/json"),
        ("POST", f"{OPENAI}/batches", b'{"input_file_id": "' + b"a" * 100_000 + b'"}', "application/json"),
        ("POST", f"{OPENAI}/batches/{MISSING_BATCH}/cancel", b"garbage", "text/plain"),
        ("GET", f"{OPENAI}/files?after=&limit=1&order=asc&purpose=batch", None, None),
        ("GET", f"{OPENAI}/files?sha256=" + "A" * 64, None, None),
        ("GET", f"{OPENAI}/batches?after=%00", None, None),
        ("GET", f"{MKA1}/files/%00/content", None, None),
        ("DELETE", f"{MKA1}/files/%F0%9F%92%A5", None, None),
    ]
    for method, path, raw, content_type in odd:
        reply = http(gw, method, path, body=raw, content_type=content_type, obo=obo, allow_5xx=True)
        assert reply.status < 500, (method, path, reply.status, reply.body[:300])
        if reply.status >= 400:
            assert_error_reply(reply, reply.status)


@pytest.mark.parametrize("kind", ["batches", "files"])
def test_another_tenants_id_is_no_list_cursor(gw, kind):
    mine, theirs = "cur-" + uuid.uuid4().hex[:8], "cur-" + uuid.uuid4().hex[:8]

    def make(obo: str) -> str:
        if kind == "files":
            return upload_raw(gw, one_line(obo), obo=obo).json["id"]
        file_id = upload_raw(gw, one_line(obo), obo=obo).json["id"]
        return create_batch_raw(gw, file_id, obo=obo).json["id"]

    older_mine = make(mine)
    foreign = make(theirs)
    make(mine)
    unknown = ("file-" if kind == "files" else "batch_") + uuid.uuid4().hex
    as_unknown = http(gw, "GET", f"{OPENAI}/{kind}?after={unknown}", obo=mine)
    as_foreign = http(gw, "GET", f"{OPENAI}/{kind}?after={foreign}", obo=mine)
    # "As if it did not exist": a foreign id must get exactly the answer an id that never existed gets.
    assert as_foreign.status == as_unknown.status
    if as_unknown.status == 200:
        assert [o["id"] for o in as_foreign.json["data"]] == [o["id"] for o in as_unknown.json["data"]], (
            f"the foreign cursor revealed ordering: it listed {older_mine} after another tenant's object"
        )


# --- connection-level behaviour (a private gateway each: these tests disturb the server's log) ------------


def _auth(gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.key}"}


def test_head_on_file_content_has_no_body_before_the_next_response(gateway):
    data = one_line("head request")
    file_id = upload_raw(gateway, data).json["id"]
    connection = http_client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.request("GET", f"{OPENAI}/files/{file_id}/content", headers=_auth(gateway))
        first = connection.getresponse()
        assert first.status == 200 and first.read() == data
        connection.request("GET", f"{OPENAI}/files/{file_id}", headers=_auth(gateway))
        second = connection.getresponse()
        assert second.status == 200 and b'"id"' in second.read(), "keep-alive works after a download"
    finally:
        connection.close()


def test_head_on_file_content_keeps_the_connection_usable(gateway):
    file_id = upload_raw(gateway, one_line("head request")).json["id"]
    connection = http_client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.request("HEAD", f"{OPENAI}/files/{file_id}/content", headers=_auth(gateway))
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b""
        connection.request("GET", f"{OPENAI}/files/{file_id}", headers=_auth(gateway))
        after = connection.getresponse()  # raises BadStatusLine when the HEAD answer carried a body
        assert after.status == 200
        assert json.loads(after.read())["id"] == file_id
    finally:
        connection.close()


def _abort_upload(gateway, size: int) -> None:
    body, ctype = multipart([("purpose", None, b"batch", None), ("file", "big.jsonl", b"x" * size, None)])
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    head = (
        f"POST {OPENAI}/files HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {gateway.key}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[: len(body) // 2])
    time.sleep(0.3)
    sock.close()


def _abort_download(gateway, file_id: str) -> None:
    connection = http_client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("GET", f"{OPENAI}/files/{file_id}/content", headers=_auth(gateway))
    answer = connection.getresponse()
    assert answer.status == 200
    answer.read(100)
    connection.sock.close()
    connection.close()


def test_an_aborted_upload_leaves_no_file_behind(gateway):
    _abort_upload(gateway, 3_000_000)
    time.sleep(0.5)
    assert http(gateway, "GET", f"{OPENAI}/files").json["data"] == []
    blobs = [p for p in (gateway.data_dir / "files").rglob("*") if p.is_file()]
    assert blobs == [], f"partial upload bytes were left on disk: {blobs}"
    assert http(gateway, "GET", "/healthz", key=None).status == 200


def test_client_disconnects_are_not_logged_as_server_errors(gateway):
    file_id = upload_raw(gateway, b"y" * 8_000_000 + b"\n").json["id"]
    _abort_download(gateway, file_id)
    _abort_upload(gateway, 3_000_000)
    time.sleep(0.8)
    assert http(gateway, "GET", "/healthz", key=None).status == 200
    log = serve_log(gateway)
    assert "unhandled error" not in log, log[-2500:]


def test_the_server_logged_no_unhandled_error(gw):
    """Runs last in this module: nothing above made the gateway log an unhandled exception."""
    log = serve_log(gw)
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
