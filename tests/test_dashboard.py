"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against the real stack."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api import ApiServer, api_server, new_key
from conftest import ROOT, run_cli
from pipeline import sandbox, workers

from dialer.store import Store

CHROMIUM = "/usr/bin/chromium"
EXAMPLE_CSV = ROOT / "campaigns" / "example.csv"
DEMO_YAML = ROOT / "campaigns" / "demo.yaml"
#: Set to a path to keep the screenshot of the running campaign (the README shows docs/dashboard.png).
SCREENSHOT_ENV = "DIALER_DASHBOARD_SCREENSHOT"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def browser_page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def test_sign_in_upload_run_watch_download_and_add_a_dnc_number(browser_page: object, redis_url: str,
                                                                tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    key = new_key(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path), \
            api_server(redis_url, tmp_path, **box.env) as api:
        page.goto(api.url)
        page.fill("input[name=key]", "dk_wrong_key")
        page.click("button:has-text('Sign in')")
        expect(page.get_by_role("alert")).to_contain_text("not valid")
        page.fill("input[name=key]", key)
        page.click("button:has-text('Sign in')")
        expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()

        page.set_input_files("input[name=file]", str(EXAMPLE_CSV))
        page.fill("input[name=name]", "Browser reminders")
        page.fill("input[name=max_concurrent_calls]", "3")
        page.fill("input[name=calls_per_second]", "3")
        page.fill("input[name=retry_busy]", "0.5")
        page.fill("input[name=retry_no_answer]", "0.5")
        page.fill("input[name=retry_carrier_error]", "0.5")
        page.fill("input[name=ring_timeout_s]", "2")
        page.fill("textarea[name=yaml]", DEMO_YAML.read_text())
        page.click("text=Upload and check")
        page.wait_for_url("**/campaigns/*")
        expect(page.locator("#state")).to_have_text("ready to start", timeout=30_000)
        expect(page.locator(".reasons")).to_contain_text("invalid_number: 1")
        cid = page.url.rsplit("/", 1)[1]

        page.click("button[data-action=start]")
        expect(page.locator("#state")).to_have_text("running")
        seen = _watch_final_count(page, api)
        assert seen[-1] == "18" and len(set(seen)) > 2, seen
        expect(page.locator("#chart")).to_be_visible()

        page.fill("input[name=row]", "2")
        page.click("#contact-open button")
        expect(page.locator("#contact h3").first).to_contain_text("Row 2: +12025550100")
        expect(page.locator("#contact table tbody tr")).not_to_have_count(0)

        with page.expect_download() as download_info:
            page.click(".downloads >> text=CSV")
        downloaded = Path(download_info.value.path()).read_bytes()
        exported = tmp_path / "cli.csv"
        assert run_cli(redis_url, "report", "export", cid, "-o", str(exported)).returncode == 0
        assert downloaded == exported.read_bytes()

        page.click("nav >> text=Do-not-call list")
        page.fill("input[name=numbers]", "202-555-0177")
        page.click("#dnc-add button")
        expect(page.locator("#dnc-list")).to_contain_text("+12025550177")
    assert Store.from_url(redis_url).dnc_contains("+12025550177")


def _watch_final_count(page: object, api: ApiServer) -> list[str]:
    """The "done" counter as the page shows it, read until the campaign completes; a screenshot mid-run."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    seen: list[str] = []
    shot = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        value = page.locator("[data-field=final]").inner_text()
        if not seen or seen[-1] != value:
            seen.append(value)
        if not shot and 8 <= int(value) < 18 and os.environ.get(SCREENSHOT_ENV):
            page.screenshot(path=os.environ[SCREENSHOT_ENV], full_page=True)
            shot = True
        if page.locator("#state").inner_text() == "completed":
            seen.append(page.locator("[data-field=final]").inner_text())
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"the page never showed the campaign completed; it showed {seen}\n{api.log[-2000:]}")


