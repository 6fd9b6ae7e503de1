"""The dashboard at /ui in a real headless chromium, against a live gateway and a slow mock upstream.

Debian's chromium is driven by Playwright through its executable path (no browser download).
With BATCHGATE_SCREENSHOTS=DIR (scripts/dashboard-screenshots) the list and batch pages are saved
there as dashboard-batches.png and dashboard-batch.png, the pictures the README shows.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.lifecycle import CHAT, chat_line, client, jsonl, start_batch, wait_status, wait_until
from tests.support.servers import MockUpstream, upstream_config
from tests.support.system import ensure_program

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 40_000


@pytest.fixture(scope="module")
def browser():
    executable = ensure_program("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def slow_upstream(tmp_path):
    upstream = MockUpstream(tmp_path, 0.15)  # a few seconds per batch, so its bar is seen moving
    yield upstream
    upstream.stop()


@pytest.fixture
def dashboard_gateway(make_gateway, slow_upstream):
    return make_gateway(upstream_config(("mock", slow_upstream.base_url, ["*"])))


def open_page(browser: Browser, viewport: dict) -> Page:
    page = browser.new_context(viewport=viewport, accept_downloads=True).new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def sign_in(page: Page, url: str, key: str, on_behalf_of: str = "") -> None:
    page.goto(url + "/ui")
    page.fill("#key", key)
    if on_behalf_of:
        page.fill("#on-behalf-of", on_behalf_of)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Batches")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("BATCHGATE_SCREENSHOTS")
    if folder:  # down to the end of the page's content, however short it is
        height = page.evaluate("Math.ceil(document.getElementById('view').getBoundingClientRect().bottom)")
        page.screenshot(
            path=str(Path(folder) / name), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": height}
        )


def bar_value(page: Page, batch_id: str) -> int:
    return int(page.locator(f'tr[data-batch-id="{batch_id}"] [role=progressbar]').get_attribute("aria-valuenow"))


def status_of_row(page: Page, batch_id: str):
    return page.locator(f'tr[data-batch-id="{batch_id}"] .badge')


def running_lines(count: int) -> list[dict]:
    """Chat lines, every tenth answered 400 by the mock, so the batch has failed lines to show; the mock
    reports one of each line's three prompt tokens as served by its prefix cache."""
    return [
        chat_line(f"q{i:03d}", f"question {i} [cached:1]" + (" [status:400]" if i % 10 == 3 else ""))
        for i in range(count)
    ]


def test_dashboard_follows_downloads_cancels_and_starts_batches(dashboard_gateway, browser, tmp_path):
    gateway = dashboard_gateway
    api = client(gateway)
    _, done = start_batch(api, [chat_line(f"s{i}", f"smoke {i}") for i in range(5)])
    wait_status(api, done.id)
    bad_file = api.files.create(file=("bad.jsonl", jsonl([chat_line("x", "a"), chat_line("x", "b")])), purpose="batch")
    invalid = api.batches.create(input_file_id=bad_file.id, endpoint=CHAT, completion_window="24h")
    wait_status(api, invalid.id)
    parked_lines = [chat_line(f"p{i}", f"parked {i} [sleep:3]") for i in range(20)]
    _, parked = start_batch(api, parked_lines, max_concurrency=1, filename="parked.jsonl")
    running_file = api.files.create(file=("eval.jsonl", jsonl(running_lines(80))), purpose="batch")
    running = api.batches.create(
        input_file_id=running_file.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"description": "nightly eval", "model": "m"},
        extra_body={"max_concurrency": 2},
    )

    page = open_page(browser, DESKTOP)
    sign_in(page, gateway.url, gateway.key)

    # The running batch's bar moves while the page stays put: the list polls by itself.
    expect(status_of_row(page, running.id)).to_have_attribute("data-status", "in_progress")
    first = wait_until(lambda: bar_value(page, running.id), what="the first lines done")
    assert first < 80
    wait_until(lambda: bar_value(page, running.id) > first, what="the bar to move")
    screenshot(page, "dashboard-batches.png")

    # The keyboard focus stays on a batch's link while the list re-renders around it.
    page.get_by_role("link", name=running.id).focus()
    before = bar_value(page, running.id)
    wait_until(lambda: bar_value(page, running.id) > before, what="the list to re-render")
    assert page.evaluate("document.activeElement.dataset.focusKey") == f"open-{running.id}"
    row = page.locator(f'tr[data-batch-id="{running.id}"]')
    expect(row).to_contain_text("nightly eval")
    expect(row).to_contain_text("chat/completions")

    # Filters show only the batches of a status.
    page.get_by_role("link", name="Failed", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(status_of_row(page, invalid.id)).to_have_attribute("data-status", "failed")
    page.get_by_role("link", name="All", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(4)

    # The batch page follows it to the end and shows its failed lines and usage; the output downloads.
    page.get_by_role("link", name=running.id).focus()
    page.keyboard.press("Enter")
    expect(page.locator(".page-head .badge")).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator(".timeline")).to_contain_text("Completed")
    failed_card = page.locator(".card-failed-lines")
    expect(failed_card).to_contain_text("q003")
    expect(failed_card).to_contain_text("400")
    expect(page.locator(".card-progress")).to_contain_text("72")  # completed lines
    expect(page.locator(".card-usage dd").first).not_to_have_text("0")
    expect(page.locator(".card-usage .stat").filter(has_text="Cache hit rate")).to_contain_text("33%")
    saved = api.batches.retrieve(running.id).model_extra["duplicates_saved"]
    expect(page.locator(".card-usage .stat").filter(has_text="Repeats saved")).to_contain_text(str(saved))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download output").click()
    saved = Path(download.value.path()).read_text().splitlines()
    finished = api.batches.retrieve(running.id)
    assert download.value.suggested_filename.endswith(".jsonl")
    assert [json.loads(line)["custom_id"] for line in saved] == [f"q{i:03d}" for i in range(80) if i % 10 != 3]
    assert "\n".join(saved) + "\n" == api.files.content(finished.output_file_id).text
    screenshot(page, "dashboard-batch.png")

    # A validation failure shows its errors on its page.
    page.goto(f"{gateway.url}/ui#/batches/{invalid.id}")
    expect(page.locator(".card-validation-errors")).to_contain_text("duplicate_custom_id")

    # Cancel another batch from its page.
    page.goto(f"{gateway.url}/ui#/batches/{parked.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel batch").click()
    expect(page.locator(".page-head .badge")).to_have_attribute("data-status", "cancelled")
    assert api.batches.retrieve(parked.id).status == "cancelled"

    # Upload a file and start a batch from the form; the endpoint comes from the file's first line.
    page.get_by_role("link", name="New batch", exact=True).first.click()
    page.set_input_files(
        "#input-file",
        files=[{"name": "form.jsonl", "mimeType": "application/jsonl", "buffer": jsonl(running_lines(4))}],
    )
    page.fill("#metadata", "description=from the form")
    page.get_by_role("button", name="Upload and start batch").click()
    page.wait_for_url("**/ui#/batches/batch_*")
    started_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".page-head .badge")).to_have_attribute("data-status", "completed")
    started = api.batches.retrieve(started_id)
    assert started.endpoint == CHAT and started.metadata == {"description": "from the form"}
    assert api.files.retrieve(started.input_file_id).filename == "form.jsonl"

    # Files: listed, and one deleted from the page.
    spare = api.files.create(file=("spare.jsonl", jsonl([chat_line("a", "b")])), purpose="batch")
    page.get_by_role("link", name="Files").click()
    expect(page.locator("tbody")).to_contain_text("form.jsonl")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'tr[data-file-id="{spare.id}"]').get_by_role("button", name="Delete").click()
    expect(page.locator(f'tr[data-file-id="{spare.id}"]')).to_have_count(0)
    assert spare.id not in {f.id for f in api.files.list()}


def test_another_tenant_sees_none_of_it(dashboard_gateway, browser):
    gateway = dashboard_gateway
    api = client(gateway)
    _, batch = start_batch(api, [chat_line("a", "hello")], filename="mine.jsonl")
    wait_status(api, batch.id)
    other_key = gateway.create_key("someone-else")

    for key, on_behalf_of in ((other_key, ""), (gateway.key, "alice")):
        page = open_page(browser, DESKTOP)
        sign_in(page, gateway.url, key, on_behalf_of)
        expect(page.locator(".empty")).to_contain_text("No batches yet")
        page.get_by_role("link", name="Files").click()
        expect(page.locator(".empty")).to_contain_text("No files yet")
        page.goto(f"{gateway.url}/ui#/batches/{batch.id}")
        expect(page.locator(".notice-error")).to_contain_text(f"No batch {batch.id} here")
        page.context.close()

    # The owner, for contrast, sees it.
    page = open_page(browser, DESKTOP)
    sign_in(page, gateway.url, gateway.key)
    expect(page.locator(f'tr[data-batch-id="{batch.id}"]')).to_be_visible()


def test_a_refused_key_stays_on_the_sign_in_form(dashboard_gateway, browser):
    page = open_page(browser, DESKTOP)
    page.goto(dashboard_gateway.url + "/ui")
    page.fill("#key", "sk-not-a-key")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("That key was not accepted")
    assert page.evaluate("sessionStorage.length") == 0


def test_a_key_revoked_while_signed_in_signs_the_page_out(dashboard_gateway, browser):
    gateway = dashboard_gateway
    key = gateway.create_key("short-lived", owner="test")
    page = open_page(browser, DESKTOP)
    sign_in(page, gateway.url, key)
    result = gateway.cli("keys", "revoke", "short-lived")
    assert result.returncode == 0, result.stderr
    expect(page.get_by_role("alert")).to_contain_text("Signed out: Incorrect API key provided.")
    expect(page.locator("#key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_every_page_fits_a_phone_screen(dashboard_gateway, browser, tmp_path):
    gateway = dashboard_gateway
    api = client(gateway)
    _, batch = start_batch(api, running_lines(12), filename="a-rather-long-file-name-for-a-small-screen.jsonl")
    wait_status(api, batch.id)
    page = open_page(browser, PHONE)
    sign_in(page, gateway.url, gateway.key)
    for name, route, ready in (
        ("batches", "#/batches", f'tr[data-batch-id="{batch.id}"]'),
        ("batch", f"#/batches/{batch.id}", ".card-failed-lines tbody tr"),
        ("files", "#/files", "tbody tr"),
        ("new", "#/new", "#input-file"),
    ):
        page.goto(f"{gateway.url}/ui{route}")
        page.locator(ready).first.wait_for()
        page.screenshot(path=str(tmp_path / f"phone-{name}.png"), full_page=True)
        overflow = page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"{route} is {overflow}px wider than a 390px screen"


def test_the_page_and_its_files_need_no_key_and_nothing_else_is_served(dashboard_gateway):
    url = dashboard_gateway.url
    with urllib.request.urlopen(url + "/ui") as page:
        assert page.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert b'src="/ui/static/js/main.js"' in page.read()
    with urllib.request.urlopen(url + "/ui/static/js/main.js") as script:
        assert script.headers["Content-Type"].startswith("text/javascript")
    for path in ("/ui/static/nothing.js", "/ui/static/%2e%2e/routes.py", "/ui/static/../routes.py"):
        assert refusal(url + path) == 404, path
    assert refusal(url + "/api/v1/llm/batches") == 401


def refusal(url: str) -> int:
    """The status of a GET that must fail (closing the error's own response)."""
    try:
        urllib.request.urlopen(url).close()
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
    raise AssertionError(f"{url} was served")
