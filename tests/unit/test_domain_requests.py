"""batchgate.domain.requests: create-batch bodies, list parameters, purposes, sha256, X-On-Behalf-Of."""

from __future__ import annotations

import pytest

from batchgate.domain.lines import ENDPOINTS
from batchgate.domain.requests import (
    FILE_PURPOSES,
    MAX_RESULTS_PAGE,
    CreateBatch,
    Page,
    parse_create_batch,
    parse_on_behalf_of,
    parse_page,
    parse_purpose,
    parse_results_page,
    parse_sha256,
)
from batchgate.errors import InvalidRequest

DEFAULT_CONCURRENCY = 64
CEILING = 1024


def body(**changes) -> dict:
    base = {"input_file_id": "file-abc", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def create(b) -> CreateBatch:
    return parse_create_batch(b, DEFAULT_CONCURRENCY, CEILING)


def invalid(fn, *args, param: str | None, code: str | None = None, mentions: tuple[str, ...] = (), **kwargs):
    with pytest.raises(InvalidRequest) as info:
        fn(*args, **kwargs)
    error = info.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.param == param
    if code is not None:
        assert error.code == code
    assert error.message and error.message[-1] in ".'\"", error.message
    for text in mentions:
        assert text in error.message, (text, error.message)
    wire = error.to_wire()["error"]
    assert wire["param"] == param and wire["message"] == error.message
    return error


# --- parse_create_batch ------------------------------------------------------------------------------------


def test_minimal_body_gets_defaults():
    assert create({"input_file_id": "file-1", "endpoint": "/v1/embeddings"}) == CreateBatch(
        input_file_id="file-1",
        endpoint="/v1/embeddings",
        completion_window="24h",
        metadata=None,
        max_concurrency=DEFAULT_CONCURRENCY,
        output_expires_seconds=None,
    )


def test_full_body():
    result = create(
        body(
            metadata={"team": "search", "run": "7"},
            max_concurrency=8,
            output_expires_after={"anchor": "created_at", "seconds": 7200},
        )
    )
    assert result == CreateBatch("file-abc", "/v1/chat/completions", "24h", {"team": "search", "run": "7"}, 8, 7200)


@pytest.mark.parametrize("value", [[], "x", None, 5])
def test_body_must_be_an_object(value):
    invalid(create, value, param=None)


def test_unknown_parameter_is_named():
    invalid(create, body(model="gpt-4o"), param="model", code="unknown_parameter", mentions=("'model'",))


def test_first_unknown_parameter_in_sorted_order_is_named():
    invalid(create, body(zeta=1, alpha=2), param="alpha", code="unknown_parameter")


def test_missing_input_file_id():
    invalid(
        create,
        body(input_file_id=_DROP),
        param="input_file_id",
        code="missing_required_parameter",
        mentions=("input_file_id",),
    )


@pytest.mark.parametrize("value", ["", 5, ["file-1"], {"id": "file-1"}])
def test_invalid_input_file_id(value):
    invalid(create, body(input_file_id=value), param="input_file_id", code="invalid_type", mentions=("input_file_id",))


def test_missing_endpoint():
    invalid(create, body(endpoint=_DROP), param="endpoint", code="missing_required_parameter")


@pytest.mark.parametrize(
    "endpoint", ["/v1/completions", "/v1/chat/completions/", "/chat/completions", "/v1/moderations", "/V1/embeddings"]
)
def test_endpoint_must_be_one_of_four(endpoint):
    error = invalid(create, body(endpoint=endpoint), param="endpoint", code="invalid_endpoint")
    for allowed in ENDPOINTS:
        assert allowed in error.message
    assert repr(endpoint) in error.message


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_endpoint_is_accepted(endpoint):
    assert create(body(endpoint=endpoint)).endpoint == endpoint


@pytest.mark.parametrize(
    "window", ["0h", "8d", "169h", "1.5h", " 24h", "24h ", "24", "", "01h", "24H", "1w", "-1h", "99999h", 86400, None]
)
def test_completion_window_outside_1h_to_7d_is_refused_naming_the_range(window):
    invalid(
        create,
        body(completion_window=window),
        param="completion_window",
        code="invalid_completion_window",
        mentions=("1h", "7d"),
    )


@pytest.mark.parametrize("window", ["24h", "1h", "48h", "2d", "7d", "168h", "1d"])
def test_whole_hours_or_days_from_1h_to_7d_are_accepted(window):
    assert create(body(completion_window=window)).completion_window == window


def test_completion_window_defaults_to_24h():
    assert create(body(completion_window=_DROP)).completion_window == "24h"


# metadata


def test_metadata_16_pairs_is_the_limit():
    metadata = {f"k{i}": f"v{i}" for i in range(16)}
    assert create(body(metadata=metadata)).metadata == metadata


def test_metadata_more_than_16_pairs():
    metadata = {f"k{i}": "v" for i in range(17)}
    invalid(create, body(metadata=metadata), param="metadata", code="invalid_metadata", mentions=("16", "17"))


def test_metadata_key_of_64_chars_is_accepted():
    key = "k" * 64
    assert create(body(metadata={key: "v"})).metadata == {key: "v"}


def test_metadata_key_longer_than_64_chars():
    key = "k" * 65
    invalid(create, body(metadata={key: "v"}), param=f"metadata.{key}", code="invalid_metadata", mentions=("64",))


def test_metadata_value_of_512_chars_is_accepted():
    assert create(body(metadata={"k": "v" * 512})).metadata == {"k": "v" * 512}


def test_metadata_value_longer_than_512_chars():
    invalid(
        create, body(metadata={"k": "v" * 513}), param="metadata.k", code="invalid_metadata", mentions=("512", "'k'")
    )


@pytest.mark.parametrize("value", [5, None, True, ["a"], {"a": "b"}, 1.5])
def test_metadata_value_must_be_a_string(value):
    invalid(
        create, body(metadata={"k": value}), param="metadata.k", code="invalid_metadata", mentions=("string", "'k'")
    )


@pytest.mark.parametrize("metadata", [["k", "v"], "k=v", 5])
def test_metadata_must_be_an_object(metadata):
    invalid(create, body(metadata=metadata), param="metadata", code="invalid_metadata")


def test_empty_metadata_is_kept():
    assert create(body(metadata={})).metadata == {}


def test_metadata_is_copied():
    metadata = {"a": "1"}
    result = create(body(metadata=metadata))
    metadata["b"] = "2"
    assert result.metadata == {"a": "1"}


# max_concurrency


def test_max_concurrency_default():
    assert create(body()).max_concurrency == DEFAULT_CONCURRENCY
    assert parse_create_batch(body(), 3, 10).max_concurrency == 3


@pytest.mark.parametrize("value", [1, 2, CEILING])
def test_max_concurrency_within_bounds(value):
    assert create(body(max_concurrency=value)).max_concurrency == value


@pytest.mark.parametrize("value", [0, -1, CEILING + 1, True, False, 2.0, "8", [8]])
def test_max_concurrency_invalid(value):
    invalid(
        create,
        body(max_concurrency=value),
        param="max_concurrency",
        code="invalid_max_concurrency",
        mentions=(str(CEILING),),
    )


def test_max_concurrency_ceiling_is_the_one_given():
    assert parse_create_batch(body(max_concurrency=5), 1, 5).max_concurrency == 5
    invalid(parse_create_batch, body(max_concurrency=6), 1, 5, param="max_concurrency", mentions=("5", "6"))


# output_expires_after


@pytest.mark.parametrize(
    "value, seconds",
    [
        ({"anchor": "created_at", "seconds": 3600}, 3600),
        ({"seconds": 86400}, 86400),
        ({"anchor": "created_at", "seconds": 30 * 86400}, 30 * 86400),
    ],
)
def test_output_expires_after_valid(value, seconds):
    assert create(body(output_expires_after=value)).output_expires_seconds == seconds


@pytest.mark.parametrize("value", [{"anchor": "last_active_at", "seconds": 3600}, 3600, "1h", [3600]])
def test_output_expires_after_wrong_shape(value):
    invalid(
        create,
        body(output_expires_after=value),
        param="output_expires_after",
        code="invalid_expires_after",
        mentions=("anchor",),
    )


@pytest.mark.parametrize("seconds", [3599, 30 * 86400 + 1, 0, -5, True, "3600", 3600.0, None])
def test_output_expires_after_seconds_out_of_range(seconds):
    invalid(
        create,
        body(output_expires_after={"anchor": "created_at", "seconds": seconds}),
        param="output_expires_after.seconds",
        code="invalid_expires_after",
        mentions=("3600", "2592000"),
    )


# --- parse_page ----------------------------------------------------------------------------------------------


def test_page_defaults():
    assert parse_page({}) == Page(limit=20, after=None, descending=True)


@pytest.mark.parametrize("limit", ["1", "20", "100"])
def test_page_limit_within_bounds(limit):
    assert parse_page({"limit": limit}).limit == int(limit)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "100000"])
def test_page_limit_out_of_bounds(limit):
    invalid(parse_page, {"limit": limit}, param="limit", code="invalid_limit", mentions=("1", "100", limit))


@pytest.mark.parametrize("limit", ["abc", "1.5", "", "ten", "0x10"])
def test_page_limit_not_an_integer(limit):
    invalid(parse_page, {"limit": limit}, param="limit", code="invalid_limit", mentions=("integer", repr(limit)))


def test_page_custom_bounds():
    assert parse_page({}, default_limit=10000, max_limit=10000).limit == 10000
    assert parse_page({"limit": "500"}, max_limit=1000).limit == 500
    invalid(parse_page, {"limit": "1001"}, max_limit=1000, param="limit", mentions=("1000",))


def test_page_after():
    assert parse_page({"after": "batch_123"}).after == "batch_123"
    assert parse_page({"after": ""}).after is None


@pytest.mark.parametrize("order, descending", [("asc", False), ("desc", True)])
def test_page_order(order, descending):
    assert parse_page({"order": order}, with_order=True).descending is descending


def test_page_order_defaults_to_desc():
    assert parse_page({}, with_order=True).descending is True


@pytest.mark.parametrize("order", ["ascending", "ASC", "up", ""])
def test_page_order_invalid(order):
    invalid(
        parse_page, {"order": order}, with_order=True, param="order", code="invalid_order", mentions=("asc", "desc")
    )


def test_page_without_order_support_is_newest_first():
    assert parse_page({"order": "asc"}).descending is True


# --- parse_purpose -------------------------------------------------------------------------------------------


def test_purpose_batch():
    assert parse_purpose("batch") == "batch"


def test_purpose_missing():
    invalid(parse_purpose, None, param="purpose", code="missing_required_parameter", mentions=("purpose",))


@pytest.mark.parametrize("purpose", ["batch_output", "fine-tune", "assistants", "", "BATCH"])
def test_purpose_only_batch_for_uploads(purpose):
    invalid(parse_purpose, purpose, param="purpose", code="invalid_purpose", mentions=("'batch'", repr(purpose)))


def test_purpose_with_allowed_list():
    assert parse_purpose("batch_output", FILE_PURPOSES) == "batch_output"
    assert parse_purpose("batch", FILE_PURPOSES) == "batch"
    invalid(parse_purpose, "fine-tune", FILE_PURPOSES, param="purpose", mentions=("'batch'", "'batch_output'"))


# --- parse_sha256 --------------------------------------------------------------------------------------------

DIGEST = "0123456789abcdef" * 4


def test_sha256_absent():
    assert parse_sha256(None) is None


def test_sha256_is_lowercased():
    assert parse_sha256(DIGEST) == DIGEST
    assert parse_sha256(DIGEST.upper()) == DIGEST


@pytest.mark.parametrize(
    "value", [DIGEST[:-1], DIGEST + "0", "g" * 64, "", " " + DIGEST[1:], DIGEST[:32] + "-" + DIGEST[33:]]
)
def test_sha256_invalid(value):
    invalid(parse_sha256, value, param="sha256", code="invalid_sha256", mentions=("64",))


def test_sha256_with_trailing_newline_is_invalid():
    invalid(parse_sha256, DIGEST + "\n", param="sha256", code="invalid_sha256")


# --- parse_on_behalf_of --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_on_behalf_of_absent(value):
    assert parse_on_behalf_of(value) == ""


@pytest.mark.parametrize("value", ["tenant-1", "a", "user@example.com", "a b c", "~!#$%^&*()", "x" * 256])
def test_on_behalf_of_valid(value):
    assert parse_on_behalf_of(value) == value


@pytest.mark.parametrize("value", ["x" * 257, " leading-space", "tab\there", "ctrl\x01", "café", "\x7f", "日本"])
def test_on_behalf_of_invalid(value):
    invalid(parse_on_behalf_of, value, param="X-On-Behalf-Of", code="invalid_header", mentions=("256", "ASCII"))


# a batch's results: after (a line number) and limit


def test_results_page_defaults_and_bounds():
    page = parse_results_page({})
    assert (page.after, page.limit) == (0, 1000)
    page = parse_results_page({"after": "250", "limit": str(MAX_RESULTS_PAGE)})
    assert (page.after, page.limit) == (250, MAX_RESULTS_PAGE)


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ({"after": "-1"}, "after", "invalid_after"),
        ({"after": "x"}, "after", "invalid_after"),
        ({"after": "1.5"}, "after", "invalid_after"),
        ({"after": ""}, "after", "invalid_after"),
        ({"after": "batch_abc"}, "after", "invalid_after"),
        ({"limit": "0"}, "limit", "invalid_limit"),
        ({"limit": str(MAX_RESULTS_PAGE + 1)}, "limit", "invalid_limit"),
        ({"limit": "ten"}, "limit", "invalid_limit"),
        ({"limit": "٣"}, "limit", "invalid_limit"),
    ],
)
def test_bad_results_page_parameters_are_refused(query, param, code):
    invalid(parse_results_page, query, param=param, code=code, mentions=(param,))


@pytest.mark.parametrize(("given", "wanted"), [(True, True), (False, False), (None, False)])
def test_dry_run_is_a_boolean_off_by_default(given, wanted):
    assert create(body(dry_run=given)).dry_run is wanted
    assert create(body()).dry_run is False


@pytest.mark.parametrize("value", ["true", 1, 0, [], {}])
def test_a_dry_run_of_another_type_is_refused_by_name(value):
    invalid(create, body(dry_run=value), param="dry_run", code="invalid_dry_run", mentions=("'dry_run'",))
