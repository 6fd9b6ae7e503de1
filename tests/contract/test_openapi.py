"""The OpenAPI document at /openapi.json and its page at /docs.

The document is valid OpenAPI 3.1; it names exactly the routes the app serves; the real answers of a
live gateway (objects, lists, errors, models, health, a call through the mock upstream) validate
against the schemas it gives for their route and status; /docs is a page made of local files only,
and a real headless browser renders every operation from the document.
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from batchgate.api.app import create_app
from batchgate.api.openapi import build_openapi
from batchgate.api.paths import DOCS_ASSETS, PREFIXES
from batchgate.api.services import Services
from batchgate.blobs import open_blobs
from batchgate.settings import Settings
from batchgate.store import open_store
from tests.contract.conftest import (
    MKA1,
    OPENAI,
    Reply,
    assert_error_reply,
    create_batch_raw,
    http,
    jsonl,
    request_line,
    upload_raw,
    wait_batch_raw,
)
from tests.support.system import ensure_program

DOCUMENT_URI = "urn:batchgate:openapi"


# --- the document and the routes ----------------------------------------------------------------------


def test_document_is_valid_openapi_3_1():
    document = build_openapi()
    validate_openapi(document)
    assert document["openapi"] == "3.1.0"


def test_served_document_is_valid_and_says_this_deployments_limits(make_module_gateway):
    gw = make_module_gateway(env={"BATCHGATE_MAX_CONCURRENCY_CEILING": "77"})
    reply = http(gw, "GET", "/openapi.json", key=None)
    assert reply.status == 200 and reply.content_type == "application/json"
    validate_openapi(reply.json)
    ceiling = reply.json["components"]["schemas"]["CreateBatch"]["properties"]["max_concurrency"]["maximum"]
    assert ceiling == 77


def documented_routes(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


async def served_routes(tmp_path) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route of the app `batchgate serve` runs, over a real store."""
    url = "sqlite:///" + str(tmp_path / "meta.db")
    settings = Settings(data_dir=tmp_path, database_url=url)
    store = await open_store(url)
    try:
        app = create_app(Services(settings, store, open_blobs(settings.resolved_storage_url)))
        return {(route.method, route.resource.canonical) for route in app.router.routes() if route.method != "HEAD"}
    finally:
        await store.close()


async def test_document_describes_exactly_the_routes_served(tmp_path):
    # Meta routes (health, this document, its page and files) are routes like any other: all are documented.
    served, documented = await served_routes(tmp_path), documented_routes(build_openapi())
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    for prefix in PREFIXES:
        assert ("POST", f"{prefix}/batches") in served


def test_every_documented_operation_has_a_unique_id_tag_and_error_answer():
    document = build_openapi()
    tags = {tag["name"] for tag in document["tags"]}
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)
    for op in operations:
        assert set(op["tags"]) <= tags, op["operationId"]
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


# --- real answers against the document's schemas ------------------------------------------------------


class Conformance:
    """Checks a live reply against what the document says its route answers with that status."""

    def __init__(self, document: dict):
        self.document = document
        self.registry = Registry().with_resource(DOCUMENT_URI, Resource(document, DRAFT202012))

    def check(self, method: str, template: str, reply: Reply) -> None:
        operation = self.document["paths"][template][method.lower()]
        answers = operation["responses"]
        key = str(reply.status) if str(reply.status) in answers else "default"
        assert key in answers, f"{method} {template}: {reply.status} is not documented"
        content = answers[key]["content"]
        assert reply.content_type in content, f"{method} {template}: {reply.content_type} not in {list(content)}"
        if reply.content_type == "application/json":
            pointer = "/".join(
                part.replace("~", "~0").replace("/", "~1")
                for part in ("paths", template, method.lower(), "responses", key, "content", "application/json")
            )
            validator = Draft202012Validator({"$ref": f"{DOCUMENT_URI}#/{pointer}/schema"}, registry=self.registry)
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(reply.json)]
            assert not errors, f"{method} {template} {reply.status}: {errors}\n{reply.body[:800]!r}"


@pytest.fixture(scope="module")
def conformance(module_gateway) -> Conformance:
    document = http(module_gateway, "GET", "/openapi.json", key=None).json
    return Conformance(document)


def lines_for(*texts: str) -> bytes:
    return jsonl(request_line(f"r{i}", text) for i, text in enumerate(texts))


@pytest.mark.parametrize("prefix", [MKA1, OPENAI], ids=["mka1", "openai"])
def test_files_and_batches_answer_as_documented(module_gateway, conformance, unique_obo, prefix):
    gw, check = module_gateway, conformance.check
    uploaded = upload_raw(gw, lines_for("hello", "world", "[status:400] refused"), prefix=prefix, obo=unique_obo)
    check("POST", f"{prefix}/files", uploaded)
    file_id = uploaded.json["id"]
    check("GET", f"{prefix}/files", http(gw, "GET", f"{prefix}/files?limit=5", obo=unique_obo))
    check("GET", f"{prefix}/files/{{file_id}}", http(gw, "GET", f"{prefix}/files/{file_id}", obo=unique_obo))
    content = http(gw, "GET", f"{prefix}/files/{file_id}/content", obo=unique_obo)
    check("GET", f"{prefix}/files/{{file_id}}/content", content)

    created = create_batch_raw(gw, file_id, prefix=prefix, obo=unique_obo, metadata={"run": "docs"})
    check("POST", f"{prefix}/batches", created)
    done = http(gw, "GET", f"{prefix}/batches/{created.json['id']}", obo=unique_obo)
    check("GET", f"{prefix}/batches/{{batch_id}}", done)
    wait_batch_raw(gw, created.json["id"], obo=unique_obo, prefix=prefix)
    finished = http(gw, "GET", f"{prefix}/batches/{created.json['id']}", obo=unique_obo)
    assert finished.json["status"] == "completed" and finished.json["request_counts"]["failed"] == 1
    check("GET", f"{prefix}/batches/{{batch_id}}", finished)
    check("GET", f"{prefix}/batches", http(gw, "GET", f"{prefix}/batches?limit=2", obo=unique_obo))
    error_file = http(gw, "GET", f"{prefix}/files/{finished.json['error_file_id']}", obo=unique_obo)
    check("GET", f"{prefix}/files/{{file_id}}", error_file)
    assert error_file.json["purpose"] == "batch_output"

    slow = upload_raw(gw, lines_for("[sleep:30] slow", "[sleep:30] slower"), prefix=prefix, obo=unique_obo)
    running = create_batch_raw(gw, slow.json["id"], prefix=prefix, obo=unique_obo)
    cancelled = http(gw, "POST", f"{prefix}/batches/{running.json['id']}/cancel", obo=unique_obo)
    assert cancelled.json["status"] in ("cancelling", "cancelled")
    check("POST", f"{prefix}/batches/{{batch_id}}/cancel", cancelled)

    results = http(gw, "GET", f"{prefix}/batches/{finished.json['id']}/results", obo=unique_obo)
    check("GET", f"{prefix}/batches/{{batch_id}}/results", results)
    assert results.status == 200 and len(results.body.splitlines()) == 3
    retried = http(gw, "POST", f"{prefix}/batches/{finished.json['id']}/retry", obo=unique_obo)
    check("POST", f"{prefix}/batches/{{batch_id}}/retry", retried)
    assert retried.status == 200 and retried.json["metadata"]["retry_of"] == finished.json["id"]
    refused = http(gw, "POST", f"{prefix}/batches/{retried.json['id']}/retry", obo=unique_obo)  # not ended yet
    assert refused.status == 409
    check("POST", f"{prefix}/batches/{{batch_id}}/retry", refused)

    deleted = http(gw, "DELETE", f"{prefix}/files/{finished.json['output_file_id']}", obo=unique_obo)
    check("DELETE", f"{prefix}/files/{{file_id}}", deleted)


@pytest.mark.parametrize("prefix", [MKA1, OPENAI], ids=["mka1", "openai"])
def test_webhook_endpoints_answer_as_documented(module_gateway, conformance, unique_obo, prefix):
    gw, check = module_gateway, conformance.check
    # A public address by number: nothing is resolved, and no batch of this scope ever sends to it.
    created = http(gw, "POST", f"{prefix}/webhooks", obo=unique_obo, body={"url": "https://93.184.215.14/hook"})
    check("POST", f"{prefix}/webhooks", created)
    check("GET", f"{prefix}/webhooks", http(gw, "GET", f"{prefix}/webhooks", obo=unique_obo))
    deleted = http(gw, "DELETE", f"{prefix}/webhooks/{created.json['id']}", obo=unique_obo)
    check("DELETE", f"{prefix}/webhooks/{{webhook_id}}", deleted)
    refused = http(gw, "POST", f"{prefix}/webhooks", obo=unique_obo, body={"url": "http://10.0.0.1/hook"})
    assert refused.status == 400
    check("POST", f"{prefix}/webhooks", refused)
    gone = http(gw, "DELETE", f"{prefix}/webhooks/{created.json['id']}", obo=unique_obo)
    assert gone.status == 404
    check("DELETE", f"{prefix}/webhooks/{{webhook_id}}", gone)


def test_a_failed_batch_with_line_errors_answers_as_documented(module_gateway, conformance, unique_obo):
    gw = module_gateway
    bad = jsonl([request_line("a", "x"), request_line("a", "y"), b"{not json"])
    uploaded = upload_raw(gw, bad, obo=unique_obo)
    created = create_batch_raw(gw, uploaded.json["id"], obo=unique_obo)
    failed = wait_batch_raw(gw, created.json["id"], obo=unique_obo)
    assert failed["status"] == "failed" and failed["errors"]["data"], failed
    conformance.check("GET", "/v1/batches/{batch_id}", http(gw, "GET", f"/v1/batches/{failed['id']}", obo=unique_obo))


def test_a_dry_run_answers_as_documented(module_gateway, conformance, unique_obo):
    gw = module_gateway
    good = upload_raw(gw, lines_for("one", "two"), obo=unique_obo)
    plan = create_batch_raw(gw, good.json["id"], obo=unique_obo, dry_run=True)
    assert plan.status == 200 and plan.json["object"] == "batch.plan", plan.body
    conformance.check("POST", "/v1/batches", plan)
    bad = upload_raw(gw, jsonl([request_line("a", "x"), b"{not json"]), obo=unique_obo)
    refused = create_batch_raw(gw, bad.json["id"], obo=unique_obo, dry_run=True)
    assert assert_error_reply(refused, 400)["code"] == "invalid_input_file"
    conformance.check("POST", "/v1/batches", refused)


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "key", "status"),
    [
        ("GET", "/v1/batches/{batch_id}", "/v1/batches/batch_" + "0" * 32, None, "valid", 404),
        ("GET", "/api/v1/llm/files/{file_id}", "/api/v1/llm/files/file-nope", None, "valid", 404),
        ("GET", "/v1/batches", "/v1/batches?limit=1000", None, "valid", 400),
        ("GET", "/v1/files", "/v1/files?order=sideways", None, "valid", 400),
        ("POST", "/v1/batches", "/v1/batches", {"endpoint": "/v1/chat/completions"}, "valid", 400),
        ("POST", "/v1/batches", "/v1/batches", {"input_file_id": "f", "endpoint": "/v1/x"}, "valid", 400),
        ("GET", "/v1/files", "/v1/files", None, None, 401),
        ("GET", "/api/v1/llm/batches", "/api/v1/llm/batches", None, "bg-not-a-key", 401),
        ("POST", "/v1/chat/completions", "/v1/chat/completions", {"messages": []}, "valid", 400),
        ("GET", "/v1/models/{model_id}", "/v1/models/no-such-model", None, "valid", 404),
        ("GET", "/docs/assets/{name}", "/docs/assets/nothing.js", None, None, 404),
        ("GET", "/ui/static/{path}", "/ui/static/nothing.js", None, None, 404),
        ("GET", "/ui/static/{path}", "/ui/static/a%00b.js", None, None, 404),
    ],
    ids=[
        "unknown-batch",
        "unknown-file",
        "limit-too-big",
        "bad-order",
        "missing-file-id",
        "bad-endpoint",
        "no-key",
        "unknown-key",
        "no-model",
        "unknown-model",
        "unknown-asset",
        "unknown-ui-file",
        "ui-file-with-nul",
    ],
)
def test_errors_answer_the_documented_envelope(module_gateway, conformance, method, template, path, body, key, status):
    reply = http(module_gateway, method, path, body=body, key=module_gateway.key if key == "valid" else key)
    assert_error_reply(reply, status)
    conformance.check(method, template, reply)


@pytest.mark.parametrize("prefix", [MKA1, OPENAI], ids=["mka1", "openai"])
def test_models_health_and_sync_inference_answer_as_documented(module_gateway, conformance, prefix):
    gw, check = module_gateway, conformance.check
    check("GET", "/healthz", http(gw, "GET", "/healthz", key=None))
    check("GET", "/openapi.json", http(gw, "GET", "/openapi.json", key=None))
    check("GET", "/metrics", http(gw, "GET", "/metrics", key=None))
    models = http(gw, "GET", f"{prefix}/models")
    check("GET", f"{prefix}/models", models)
    assert models.json["data"], models.json
    first = models.json["data"][0]["id"]
    check("GET", f"{prefix}/models/{{model_id}}", http(gw, "GET", f"{prefix}/models/{first}"))
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi there"}]}
    answer = http(gw, "POST", f"{prefix}/chat/completions", body=chat)
    assert answer.status == 200 and answer.json["choices"][0]["message"]["content"] == "echo: hi there"
    check("POST", f"{prefix}/chat/completions", answer)
    streamed = http(gw, "POST", f"{prefix}/chat/completions", body={**chat, "stream": True})
    check("POST", f"{prefix}/chat/completions", streamed)
    assert streamed.content_type == "text/event-stream"
    embedded = http(gw, "POST", f"{prefix}/embeddings", body={"model": "m", "input": "hi"})
    check("POST", f"{prefix}/embeddings", embedded)
    refused = http(
        gw,
        "POST",
        f"{prefix}/chat/completions",
        body={**chat, "messages": [{"role": "user", "content": "[status:400] no"}]},
    )
    assert refused.status == 400
    check("POST", f"{prefix}/chat/completions", refused)


# --- /docs --------------------------------------------------------------------------------------------


class References(HTMLParser):
    """Every URL a page loads or links to: src and href attributes."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [(tag, value) for name, value in attrs if name in ("src", "href") and value]


def test_docs_page_loads_only_its_own_files(module_gateway):
    gw = module_gateway
    page = http(gw, "GET", "/docs", key=None)
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    parser = References()
    parser.feed(page.body.decode())
    loaded = {url for tag, url in parser.urls if tag in ("script", "link") and not url.startswith("data:")}
    assert {urljoin(gw.url + "/docs", url) for url in loaded} == {
        f"{gw.url}/docs/assets/{name}" for name in DOCS_ASSETS
    }
    for tag, url in parser.urls:
        assert url.startswith("data:") or not urlsplit(url).netloc, f"<{tag}> leaves the server: {url}"
    for name, media in DOCS_ASSETS.items():
        asset = http(gw, "GET", f"/docs/assets/{name}", key=None)
        assert asset.status == 200 and asset.content_type == media, (name, asset.status, asset.headers)
        assert not re.search(rb"\b(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", asset.body), f"{name} names another host"


def test_a_real_browser_renders_every_operation_of_the_document(module_gateway, tmp_path):
    gw = module_gateway
    chromium = ensure_program("chromium")
    document = http(gw, "GET", "/openapi.json", key=None).json
    shown = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{gw.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    dom = shown.stdout
    assert 'class="op"' in dom, shown.stderr[-2000:]
    rendered = set(re.findall(r'<details class="op" id="op-([a-z0-9-]+)"', dom))
    operation_ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert rendered == {re.sub(r"[^a-z0-9]+", "-", op.lower()).strip("-") for op in operation_ids}
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name.lower()}"' in dom, name
    assert "Could not load" not in dom


# --- the documented limits are the enforced ones ------------------------------------------------------


def test_documented_page_limits_are_the_enforced_ones(module_gateway, conformance):
    gw, document = module_gateway, conformance.document
    listed = 0
    for path, item in document["paths"].items():
        if "{" in path:
            continue  # a batch's results: test_documented_results_limits_are_the_enforced_ones
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["name"] != "limit":
                continue
            listed += 1
            low, high = parameter["schema"]["minimum"], parameter["schema"]["maximum"]
            for value, status in ((low, 200), (high, 200), (low - 1, 400), (high + 1, 400)):
                reply = http(gw, "GET", f"{path}?limit={value}")
                assert reply.status == status, (path, value, reply.body[:300])
                conformance.check("GET", path, reply)
    assert listed == 2 * len(PREFIXES)  # files and batches in each dialect


def test_documented_results_limits_are_the_enforced_ones(module_gateway, conformance, unique_obo):
    gw = module_gateway
    template = f"{OPENAI}/batches/{{batch_id}}/results"
    parameters = {p["name"]: p["schema"] for p in conformance.document["paths"][template]["get"]["parameters"]}
    created = create_batch_raw(gw, upload_raw(gw, lines_for("r"), obo=unique_obo).json["id"], obo=unique_obo)
    path = template.replace("{batch_id}", created.json["id"])
    low, high = parameters["limit"]["minimum"], parameters["limit"]["maximum"]
    for query, status in (
        (f"limit={low}", 200),
        (f"limit={high}", 200),
        (f"limit={low - 1}", 400),
        (f"limit={high + 1}", 400),
        (f"after={parameters['after']['minimum']}", 200),
        (f"after={parameters['after']['minimum'] - 1}", 400),
    ):
        reply = http(gw, "GET", f"{path}?{query}", obo=unique_obo)
        assert reply.status == status, (query, reply.body[:300])
        conformance.check("GET", template, reply)


def test_documented_create_limits_are_the_enforced_ones(module_gateway, conformance, unique_obo):
    gw = module_gateway
    create = conformance.document["components"]["schemas"]["CreateBatch"]["properties"]
    metadata = conformance.document["components"]["schemas"]["Metadata"]["anyOf"][0]
    file_id = upload_raw(gw, lines_for("limits"), obo=unique_obo).json["id"]
    too_many = {f"k{i}": "v" for i in range(metadata["maxProperties"] + 1)}
    for extra, param in (
        ({"max_concurrency": create["max_concurrency"]["maximum"] + 1}, "max_concurrency"),
        ({"max_concurrency": create["max_concurrency"]["minimum"] - 1}, "max_concurrency"),
        ({"metadata": too_many}, "metadata"),
        ({"metadata": {"k": "v" * (metadata["additionalProperties"]["maxLength"] + 1)}}, "metadata"),
        ({"completion_window": "8d"}, "completion_window"),
    ):
        reply = create_batch_raw(gw, file_id, obo=unique_obo, **extra)
        assert assert_error_reply(reply, 400)["param"].startswith(param), (extra, reply.body[:300])
        conformance.check("POST", "/v1/batches", reply)
    at_ceiling = create_batch_raw(gw, file_id, obo=unique_obo, max_concurrency=create["max_concurrency"]["maximum"])
    conformance.check("POST", "/v1/batches", at_ceiling)
    assert at_ceiling.status == 200 and at_ceiling.json["max_concurrency"] == create["max_concurrency"]["maximum"]
