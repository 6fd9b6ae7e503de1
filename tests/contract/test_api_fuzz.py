"""Schemathesis against a live gateway, from the product's own OpenAPI document (api/openapi.py).

Every route in both dialects gets generated requests (valid ones, and invalid ones where that
reaches only the gateway's own checks) with a valid key; whatever it is sent, the gateway must
never answer 5xx, and every 4xx must be the contract's error envelope.
"""

from __future__ import annotations

import copy
import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from batchgate.api.openapi import build_openapi

SEED = 20261130  # a fixed seed: CI sees the same cases every run
FUZZ = settings(
    max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
BAD_AUTHORIZATIONS = {
    "none": None,
    "unknown-key": "Bearer bg-not-a-key",
    "not-bearer": "Basic dXNlcjpwYXNz",
    "empty-bearer": "Bearer ",
}


def fuzz_document() -> dict:
    """The product's document, with the synchronous bodies narrowed to what the mock upstream answers.

    The gateway passes those bodies on as they are, so arbitrary messages or inputs would test the
    mock (it answers 500 to messages that are not objects), not the gateway.
    """
    document = copy.deepcopy(build_openapi())
    text = {"type": "string", "maxLength": 200}
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant"]}, "content": text},
    }
    bodies = document["components"]["schemas"]
    bodies["ChatCompletionRequest"]["properties"]["messages"]["items"] = message
    for name, field in (("EmbeddingRequest", "input"), ("ResponseRequest", "input"), ("ImageRequest", "prompt")):
        bodies[name]["properties"][field] = text
    return document


def load_schema(*, only_valid: bool, tags: list[str], linked: bool = False):
    # The synchronous routes pass their bodies to the upstream, so an invalid body tests the mock upstream
    # (it answers 500 to messages that are not objects), not the gateway: those routes get valid bodies only.
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "positive" if only_valid else "all",
                "max-examples": FUZZ.max_examples,
                "deterministic": True,
            },
            "phases": {"stateful": {"enabled": linked}},
        }
    )
    schema = schemathesis.openapi.from_dict(fuzz_document(), config=config)
    return schema.include(tag=tags)


resources = load_schema(only_valid=False, tags=["files", "batches", "webhooks", "meta"])
inference = load_schema(only_valid=True, tags=["inference"])
# Valid requests only, so an upload's id reaches the calls its links feed (create, get, content, cancel...).
workflows = load_schema(only_valid=True, tags=["files", "batches"], linked=True)
DOCUMENT = build_openapi()


@pytest.fixture(scope="module")
def gw(module_gateway):
    return module_gateway


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def is_error_envelope(body: object) -> bool:
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return False
    error = body["error"]
    return (
        set(error) == {"message", "type", "param", "code"}
        and isinstance(error["message"], str)
        and isinstance(error["type"], str)
        and isinstance(error["param"], (str, type(None)))
        and isinstance(error["code"], (str, type(None)))
    )


@schemathesis.check
def error_is_envelope(ctx, response, case):
    """Every 4xx/5xx answer is JSON {"error": {"message": str, "type": str, "param": str|null, "code": str|null}}."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered as {content_type!r}: {response.content[:300]!r}"
    )
    assert is_error_envelope(response.json()), f"not the error envelope: {response.content[:300]!r}"
    return None


CHECKS = [schemathesis.checks.not_a_server_error, error_is_envelope]


def call_and_check(case, gw, session):
    response = case.call(base_url=gw.url, session=session, headers={"Authorization": f"Bearer {gw.key}"}, timeout=30)
    case.validate_response(response, checks=CHECKS)


@resources.parametrize()
@FUZZ
def test_files_and_batches_never_fail_or_break_the_envelope(case, gw, session):
    call_and_check(case, gw, session)


@inference.parametrize()
@FUZZ
def test_sync_routes_never_fail_or_break_the_envelope(case, gw, session):
    call_and_check(case, gw, session)


def test_linked_calls_never_fail_or_break_the_envelope(gw, session):
    """Schemathesis's stateful phase: ids from one answer feed the next call, along the document's links."""

    class Workflow(workflows.as_state_machine()):
        def get_call_kwargs(self, case):
            return {
                "base_url": gw.url,
                "session": session,
                "headers": {"Authorization": f"Bearer {gw.key}"},
                "timeout": 30,
            }

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Workflow.run(settings=settings(FUZZ, max_examples=15, stateful_step_count=10))


# --- missing and garbage keys on every route ------------------------------------------------------------


def documented_routes() -> dict[tuple[str, str], dict]:
    """(METHOD, path template) → operation, for every route in the document."""
    return {(method.upper(), path): op for path, item in DOCUMENT["paths"].items() for method, op in item.items()}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-unknown", path)


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS.values(), ids=BAD_AUTHORIZATIONS.keys())
def test_every_route_refuses_a_missing_or_bad_key(gw, session, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for (method, path), operation in sorted(documented_routes().items()):
        response = session.request(method, gw.url + concrete(path), headers=headers, timeout=30)
        if operation.get("security") == []:  # the document says this route needs no key
            assert response.status_code in (200, 404), (method, path, response.status_code)
            continue
        assert response.status_code == 401, (method, path, response.status_code, response.text[:300])
        assert is_error_envelope(response.json()), (method, path, response.text[:300])


@pytest.mark.parametrize(
    "body",
    [
        {"error": "plain"},
        {"error": {"message": "m", "type": "t", "param": None}},
        {"error": {"message": "m", "type": "t", "param": None, "code": 400}},
        {"error": {"message": "m", "type": "t", "param": None, "code": None}, "detail": "x"},
        "400: Bad Request",
        None,
    ],
    ids=["string", "no-code", "int-code", "extra-key", "text", "null"],
)
def test_envelope_check_refuses_other_shapes(body):
    # The fuzz checks are only as good as this predicate: it must say no to near misses.
    assert not is_error_envelope(body)
    assert is_error_envelope({"error": {"message": "m", "type": "t", "param": None, "code": None}})
