"""The two passes over a batch input file judge it alike: the upload's check and the validating stage.

The upload's check is driven as its child process runs it (api/upload_checker.py:check_chunks, fed
chunks cut at random places); the validating stage as a worker runs it (worker/validate.py:validate_input,
reading the file from a local blob store, with no summary from the upload so it makes its full pass).

The upload's check does not know the batch's endpoint: its summary is used only by a batch for the
endpoint it found, and it stops at the file's first error. So, for a batch for endpoint E:
- any file: the upload finds it clean for E exactly when validation accepts it, and then both count
  the same requests, name the same model and cut the same shards;
- a file whose first request is a good one for E (the upload then knows E too): the upload's first
  error is validation's first error, word for word and on the same line.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchgate.api.upload_checker import check_chunks
from batchgate.blobs.local import LocalBlobStore
from batchgate.domain.file_check import FileSummary, LineLimits, check_file
from batchgate.domain.lines import ENDPOINTS, GoodRequests, Request, check_line, good_requests
from batchgate.domain.shards import ShardCutter
from batchgate.settings import Settings
from batchgate.worker.context import ReadSettings, ValidateSettings, slice_of
from batchgate.worker.validate import validate_input

CHAT = "/v1/chat/completions"
LIMITS = LineLimits(max_lines=12, max_line_bytes=400, shard_lines=4, max_json_depth=6)
KEY = "file-agree00"
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- lines --------------------------------------------------------------------------------------------------

custom_ids = st.sampled_from(["a", "b", "c", "dup", "é", "x" * 30, "nul\x00", " "])
models = st.sampled_from(["m", "llama", "auto"])


@st.composite
def good_objects(draw) -> dict:
    return {
        "custom_id": draw(custom_ids),
        "method": "POST",
        "url": CHAT,
        "body": {"model": draw(models), "messages": [{"role": "user", "content": draw(st.text(max_size=20))}]},
    }


odd_values = st.sampled_from(
    [
        None,
        "",
        0,
        5,
        -1.5,
        True,
        False,
        [],
        ["a"],
        {},
        {"a": 1},
        "text",
        "POST",
        "/v1/chat/completions/",
        "/v1/completions",
        *ENDPOINTS,
    ]
)


@st.composite
def mutated_objects(draw) -> dict:
    obj = draw(good_objects())
    kind = draw(st.sampled_from(["drop", "field", "body_field", "stream", "nest", "method", "url", "extra"]))
    if kind == "drop":
        del obj[draw(st.sampled_from(["custom_id", "method", "url", "body"]))]
    elif kind == "field":
        obj[draw(st.sampled_from(["custom_id", "method", "url", "body"]))] = draw(odd_values)
    elif kind == "body_field":
        body = obj["body"]
        key = draw(st.sampled_from(["model", "stream"]))
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(odd_values)
    elif kind == "stream":
        obj["body"]["stream"] = draw(st.sampled_from([True, False, 1, "true", None]))
    elif kind == "nest":
        depth = draw(st.integers(3, 6))  # around the limit of 6: the line is level 1, its body 2, x 2 + depth
        obj["body"]["x"] = _nested(depth, draw(st.booleans()))
    elif kind == "method":
        obj["method"] = draw(st.sampled_from(["GET", "post", "PUT", "", " POST"]))
    elif kind == "url":
        obj["url"] = draw(st.sampled_from([*ENDPOINTS, "/v1/completions", CHAT.upper(), CHAT + " ", ""]))
    else:
        obj[draw(st.sampled_from(["extra", "Custom_id", "URL"]))] = draw(odd_values)
    return obj


def _nested(depth: int, as_objects: bool):
    value: object = 0
    for _ in range(depth):
        value = {"k": value} if as_objects else [value]
    return value


def raw_of(obj: dict) -> bytes:
    return orjson.dumps(obj)


@st.composite
def raw_mutations(draw) -> bytes:
    """Changes no dict can make: bytes, whitespace, duplicate keys, numbers orjson refuses, size."""
    raw = raw_of(draw(good_objects()))
    kind = draw(
        st.sampled_from(
            [
                "not_utf8",
                "whitespace",
                "duplicate_key",
                "huge_number",
                "too_long",
                "cut",
                "bytes",
                "blank",
                "not_object",
                "bom",
            ]
        )
    )
    if kind == "not_utf8":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"])) + raw[at:]
    if kind == "whitespace":
        pad = st.sampled_from([b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\xc2\xa0", b"  \t "])
        return draw(pad) + raw.replace(b",", b"," + draw(pad), 1) + draw(pad)
    if kind == "duplicate_key":
        key = draw(st.sampled_from([b"custom_id", b"method", b"url", b"body"]))
        value = draw(
            st.sampled_from([b'"other"', b"1", b"null", b'{"model":"m"}', b'"POST"', b'"' + CHAT.encode() + b'"'])
        )
        return (
            raw[:-1] + b',"' + key + b'":' + value + b"}"
            if draw(st.booleans())
            else b'{"' + key + b'":' + value + b"," + raw[1:]
        )
    if kind == "huge_number":
        number = draw(st.sampled_from([b"1e999999", b"1" + b"0" * 30, b"-" + b"9" * 25, b"1.5e308", b"NaN"]))
        return raw[:-2] + b',"n":' + number + b"}}"
    if kind == "too_long":
        return raw[:-2] + b',"pad":"' + b"p" * draw(st.integers(200, 500)) + b'"}}'
    if kind == "cut":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"  \t  ", b"\r", b" " * 500]))
    if kind == "not_object":
        return draw(st.sampled_from([b"[]", b'"text"', b"3", b"null", b"true", b"[" + raw + b"]"]))
    return b"\xef\xbb\xbf" + raw


lines = st.one_of(mutated_objects().map(raw_of), raw_mutations(), good_objects().map(raw_of))
one_line = lines.map(lambda raw: raw.replace(b"\n", b" "))  # a single line: no newline inside it

# --- the two passes -----------------------------------------------------------------------------------------


def upload_pass(data: bytes, cuts: list[int], scratch: Path) -> FileSummary | object:
    """What the upload's child process makes of the file, fed in chunks cut at `cuts`."""
    chunks = iter(cut_into(data, cuts))
    return check_chunks(lambda: next(chunks, None), LIMITS, scratch)


def cut_into(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


def validation_pass(data: bytes, endpoint: str, folder: Path):
    """The validating stage's full pass over the file: its report and the shards it cut."""
    blobs = folder / "blobs"
    (blobs / KEY[-2:]).mkdir(parents=True, exist_ok=True)
    (blobs / KEY[-2:] / KEY).write_bytes(data)

    async def get_file(scope, file_id):
        return SimpleNamespace(storage_key=KEY, bytes=len(data))

    async def file_summary(file_id):
        return None  # as for a file its upload did not find clean: the full pass

    config = Settings(
        data_dir=folder / "data",
        max_lines=LIMITS.max_lines,
        max_line_bytes=LIMITS.max_line_bytes,
        shard_lines=LIMITS.shard_lines,
        max_json_depth=LIMITS.max_json_depth,
    )
    ctx = SimpleNamespace(
        validation=slice_of(ValidateSettings, config),
        reading=slice_of(ReadSettings, config),
        store=SimpleNamespace(get_file=get_file, file_summary=file_summary),
        blobs=LocalBlobStore(blobs),
    )
    batch = SimpleNamespace(scope=None, input_file_id=KEY, endpoint=endpoint)
    cutter = ShardCutter(LIMITS.shard_lines)
    report = asyncio.run(validate_input(ctx, batch, cutter))
    return report, cutter.spans()


def spans_of(summary: FileSummary):
    cutter = ShardCutter(LIMITS.shard_lines)
    cutter.restore(summary.grains, summary.requests, summary.last_line)
    return cutter.spans()


def assert_agree(data: bytes, cuts: list[int], endpoint: str = CHAT, anchored: bool = False) -> None:
    with tempfile.TemporaryDirectory() as folder:
        upload = upload_pass(data, cuts, Path(folder) / "scratch")
        report, spans = validation_pass(data, endpoint, Path(folder))
    fits = isinstance(upload, FileSummary) and upload.fits(endpoint, LIMITS)
    assert fits == report.ok, (upload, report.to_wire())
    offline = check_file(cut_into(data, cuts), endpoint, LIMITS, keep=Settings().max_reported_errors)
    assert (offline.ok, offline.error_count, offline.requests) == (report.ok, report.error_count, report.request_count)
    assert [e.to_wire() for e in offline.errors] == [e.to_wire() for e in sorted(report.errors, key=lambda e: e.line)]
    assert (next(iter(offline.models)) if len(offline.models) == 1 else None) == report.model
    if fits:
        assert (upload.requests, upload.model, spans_of(upload)) == (report.request_count, report.model, spans)
    elif anchored:
        first = min(report.errors, key=lambda e: e.line)
        if upload is None:  # the upload's set of ids knows that one came again, not where
            assert first.code == "duplicate_custom_id", first
        else:
            assert upload.to_wire() == first.to_wire()


def jsonl(raws: list[bytes], endings: list[bytes]) -> bytes:
    return b"".join(raw + endings[i % len(endings)] for i, raw in enumerate(raws))


ANCHOR = raw_of({"custom_id": "anchor", "method": "POST", "url": CHAT, "body": {"model": "m"}})
cuts = st.lists(st.integers(0, 10_000), max_size=4)

# --- the properties -----------------------------------------------------------------------------------------


@EXAMPLES
@given(raw=one_line, cut=cuts)
def test_every_line_gets_the_same_verdict_from_both_passes(raw, cut):
    """After a good first line (so the upload knows the endpoint): the same error, code and line, or none."""
    assert_agree(jsonl([ANCHOR, raw], [b"\n"]), cut, anchored=True)


def _deep(levels: int) -> bytes:
    return raw_of(
        {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": "m", "x": _nested(levels, False)}}
    )


@EXAMPLES
@given(raw=one_line, cut=cuts, endpoint=st.sampled_from([CHAT, CHAT, "/v1/embeddings"]))
@example(raw=_deep(4), cut=[], endpoint=CHAT)
@example(raw=_deep(5), cut=[], endpoint=CHAT)
@example(raw=ANCHOR[:-1] + b',"n":1e999999}', cut=[], endpoint=CHAT)
@example(raw=ANCHOR[:-2] + b',"model":5}}', cut=[], endpoint=CHAT)
@example(raw=ANCHOR.replace(b"anchor", b"anch\xffor"), cut=[], endpoint=CHAT)
@example(raw=ANCHOR.replace(b"/v1/chat/completions", b"/v1/completions"), cut=[], endpoint=CHAT)
def test_a_line_alone_is_accepted_by_both_passes_or_by_neither(raw, cut, endpoint):
    """Alone in its file, the line names the endpoint the upload checks it for."""
    assert_agree(raw + b"\n", cut, endpoint)


@EXAMPLES
@given(
    raws=st.lists(st.one_of(lines, lines, st.just(b""), good_objects().map(raw_of)), max_size=16),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=1, max_size=3),
    cut=cuts,
    trailing=st.booleans(),
)
def test_whole_files_get_the_same_first_error_and_the_same_shards(raws, endings, cut, trailing):
    """Repeats, blank lines, lines for other endpoints, more than max_lines requests, or no request at all."""
    data = jsonl([ANCHOR, *raws], endings)
    assert_agree(data if trailing else data.rstrip(b"\r\n"), cut, anchored=True)


@EXAMPLES
@given(
    raws=st.lists(st.one_of(lines, good_objects().map(raw_of)), max_size=8),
    cut=cuts,
    endpoint=st.sampled_from([CHAT, "/v1/embeddings"]),
)
def test_files_without_a_known_first_request_are_accepted_by_both_or_neither(raws, cut, endpoint):
    assert_agree(jsonl(raws, [b"\n"]), cut, endpoint)


# --- the chunk at once and the line by line rule --------------------------------------------------------------


@EXAMPLES
@given(
    raws=st.lists(st.one_of(lines, good_objects().map(raw_of), good_objects().map(raw_of)), min_size=1, max_size=12),
    endpoint=st.sampled_from([CHAT, "/v1/embeddings"]),
)
@example(raws=[ANCHOR, _deep(4)], endpoint=CHAT)
@example(raws=[ANCHOR, _deep(5)], endpoint=CHAT)
@example(raws=[ANCHOR, ANCHOR[:-1] + b',"n":1' + b"0" * 400 + b"}"], endpoint=CHAT)
@example(raws=[ANCHOR, ANCHOR[:-1] + b',"x":[[[[[0]]]]]}'], endpoint=CHAT)  # a fifth field, at the limit
@example(raws=[ANCHOR, ANCHOR[:-1] + b',"x":[[[[[[0]]]]]]}'], endpoint=CHAT)  # and one past it
def test_a_chunk_taken_at_once_is_judged_as_its_lines_one_by_one(raws, endpoint):
    """good_requests takes the lines check_line accepts, up to the first it refuses, with the same requests."""
    raws = [raw.replace(b"\n", b" ") for raw in raws]
    verdicts = [
        check_line(raw, n, endpoint, LIMITS.max_line_bytes, LIMITS.max_json_depth) for n, raw in enumerate(raws)
    ]
    run = list(itertools.takewhile(lambda verdict: isinstance(verdict, Request), verdicts))
    good = good_requests(raws, endpoint, LIMITS.max_line_bytes, LIMITS.max_json_depth)
    assert good == GoodRequests([v.custom_id for v in run], [v.model for v in run])


@EXAMPLES
@given(
    raws=st.lists(st.one_of(lines, good_objects().map(raw_of)), min_size=1, max_size=12),
    ending=st.sampled_from([b"\n", b"\r\n"]),
    endpoint=st.sampled_from([CHAT, "/v1/embeddings"]),
)
@example(raws=[ANCHOR, ANCHOR + b" \r"], ending=b"\r\n", endpoint=CHAT)
def test_lines_taken_with_their_line_breaks_are_judged_as_without(raws, ending, endpoint):
    """What FileCheck.feed_block hands good_requests: each line with its break, the size limit two bytes more."""
    raws = [raw.replace(b"\n", b" ") for raw in raws if len(raw) <= LIMITS.max_line_bytes]
    limit, depth = LIMITS.max_line_bytes, LIMITS.max_json_depth
    with_breaks = good_requests([raw + ending for raw in raws], endpoint, limit + 2, depth)
    assert with_breaks == good_requests(raws, endpoint, limit, depth)
