"""Fuzzing batch input files through one live gateway: upload, create, validate, run.

Hypothesis builds JSONL files from good request lines and hostile ones (random bytes, invalid UTF-8,
a BOM, UTF-16, deep nesting, huge numbers, duplicate keys, NUL bytes, escaped lone surrogates,
lines over the size limit, blank lines), joined by mixed line endings. Whatever the file, the
gateway never answers a 5xx, never writes an `internal_error` line, and every validation error
it reports names a 1-based line.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.conftest import (
    OPENAI,
    assert_error_reply,
    create_batch_raw,
    http,
    parse_jsonl,
    upload_raw,
    wait_batch_raw,
)
from tests.support.servers import upstream_config

MAX_LINE_BYTES = 2048
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gw(make_module_gateway, module_upstream):
    return make_module_gateway(
        upstream_config(("mock", module_upstream.base_url, ["*"])),
        env={"BATCHGATE_MAX_LINE_BYTES": str(MAX_LINE_BYTES)},
    )


def request(custom_id: str, body: bytes = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}') -> bytes:
    return (
        b'{"custom_id": "'
        + custom_id.encode()
        + b'", "method": "POST", "url": "'
        + CHAT.encode()
        + b'", "body": '
        + body
        + b"}"
    )


custom_ids = st.sampled_from(["a", "b", "c", "dup", "é", "x" * 40])
good = custom_ids.map(request)
nested = st.integers(1, 400).map(lambda n: request("deep", b'{"model": "m", "x": ' + b"[" * n + b"]" * n + b"}"))
huge_number = st.sampled_from(
    [b"1e999999", b"-1e400", b"1" + b"0" * 5000, b"123456789012345678901234567890", b"1e-999999"]
).map(lambda n: request("num", b'{"model": "m", "n": ' + n + b"}"))
duplicate_keys = st.just(
    b'{"custom_id": "k1", "custom_id": "k2", "method": "POST", "method": "GET", "url": "'
    + CHAT.encode()
    + b'", "body": {"model": "m", "model": "n"}}'
)
lone_surrogate = st.sampled_from([b'"\\ud800"', b'"\\udfff x"', b'"\\ud83d\\ude00"']).map(
    lambda s: request("sur", b'{"model": ' + s + b"}")
)
with_nul = st.tuples(good, st.integers(0, 60)).map(lambda t: t[0][: t[1]] + b"\x00" + t[0][t[1] :])
with_bom = good.map(lambda line: b"\xef\xbb\xbf" + line)
utf16 = good.map(lambda line: line.decode().encode("utf-16"))
invalid_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]).map(
    lambda bad: request("bad" + bad.decode("latin-1")).replace(bad.decode("latin-1").encode(), bad)
)
too_long = st.integers(MAX_LINE_BYTES - 200, MAX_LINE_BYTES + 200).map(
    lambda n: request("long", b'{"model": "m", "pad": "' + b"p" * n + b'"}')
)
blank = st.sampled_from([b"", b" ", b"\t", b"  \t "])
noise = st.binary(max_size=80)
line = st.one_of(
    good,
    good,
    nested,
    huge_number,
    duplicate_keys,
    lone_surrogate,
    with_nul,
    with_bom,
    utf16,
    invalid_utf8,
    too_long,
    blank,
    noise,
)
newline = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"])


@st.composite
def jsonl_files(draw) -> bytes:
    lines = draw(st.lists(st.tuples(line, newline), min_size=1, max_size=8))
    content = b"".join(raw + end for raw, end in lines)
    whole = draw(st.sampled_from(["as is", "as is", "bom", "utf-16", "cut"]))
    if whole == "bom":
        return b"\xef\xbb\xbf" + content
    if whole == "utf-16":
        return content.decode("utf-8", "surrogateescape").encode("utf-16", "surrogatepass")
    if whole == "cut":
        return content[: draw(st.integers(0, len(content)))]
    return content


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(content=jsonl_files())
def test_any_jsonl_file_is_validated_or_run_never_a_5xx_or_internal_error(gw, content):
    obo = "fz-" + uuid.uuid4().hex[:12]
    uploaded = upload_raw(gw, content, obo=obo)  # `http` fails the test on any 5xx
    if uploaded.status != 200:
        assert_error_reply(uploaded, (400, 413))
        return
    created = create_batch_raw(gw, uploaded.json["id"], CHAT, obo=obo)
    assert created.status == 200, created.body
    batch = wait_batch_raw(gw, created.json["id"], obo=obo)
    assert batch["status"] in ("completed", "failed"), batch
    for error in (batch["errors"] or {}).get("data", []):
        assert isinstance(error["line"], int) and error["line"] >= 1, error
        assert error["code"] != "internal_error", error
    counts = batch["request_counts"]
    assert counts["total"] == counts["completed"] + counts["failed"], batch
    for file_id in (batch["output_file_id"], batch["error_file_id"]):
        if file_id:
            reply = http(gw, "GET", f"{OPENAI}/files/{file_id}/content", obo=obo)
            for result in parse_jsonl(reply.body):
                assert (result["error"] or {}).get("code") != "internal_error", json.dumps(result)[:500]
