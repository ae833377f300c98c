"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) against a
real ``edm serve``, real ``edm worker`` processes, Redis and an SMTP server.

Screenshots of every page are saved in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.core.settings import PROJECT_ROOT
from tests.conftest import _stop_process_group, run_edm
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.smtp_server import RecordingSmtpServer
from tests.tracking_helpers import edm_web_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
RECIPIENTS = 120
LIVE_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium not installed (apt-get install chromium)"
)


def _recipients_csv(path: Path) -> Path:
    rows = [
        f"person{index:03d}@example.com,Person {index},City {index % 7},"
        f"{'pro' if index % 3 == 0 else 'free'}"
        for index in range(RECIPIENTS)
    ]
    rows.insert(10, "not-an-address,Broken,Nowhere,free")
    path.write_text("email,first_name,city,plan\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def served(edm_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A real ``edm serve`` with an account, on this test's database, Redis and relay."""
    templates = tmp_path / "templates"
    subprocess.run(["cp", "-r", str(PROJECT_ROOT / "templates"), str(templates)], check=True)
    edm_env["EDM_TEMPLATES_DIR"] = str(templates)
    created = run_edm(
        ["users", "create", "--email", ADMIN_EMAIL, "--password-stdin"],
        edm_env,
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    with edm_web_server("serve", edm_env, tmp_path / "serve.log") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser_page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert errors == [], errors


def _shot(page: object, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)  # type: ignore[attr-defined]


def _sign_in(page: object, url: str) -> None:
    page.goto(f"{url}/")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]
    _shot(page, "01-sign-in")
    page.fill("#email", ADMIN_EMAIL)  # type: ignore[attr-defined]
    page.fill("#password", ADMIN_PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r".*/campaigns$"))  # type: ignore[attr-defined]


def test_from_csv_to_a_delivered_campaign_in_the_browser(
    served: str,
    browser_page: object,
    start_worker,
    smtp_server: RecordingSmtpServer,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    _sign_in(page, served)
    expect(page.locator(".empty .big")).to_have_text("No campaigns yet")
    _shot(page, "02-campaigns-empty")

    # A CSV that cannot be imported says why, and imports nobody.
    page.goto(f"{served}/lists")
    bad = tmp_path / "contacts.csv"
    bad.write_text("name,city\nAnn,Lisbon\n")
    page.set_input_files("#file", str(bad))
    page.fill("#list-name", "customers")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*/lists/imports/\d+$"))
    expect(page.locator("#import-progress .error-box")).to_contain_text("Nothing was imported")
    expect(page.locator("#import-progress .error-box")).to_contain_text("contacts.csv: line 1:")
    _shot(page, "03-import-refused")

    # A good one: the report with counts and the rejected row by line and reason.
    page.goto(f"{served}/lists")
    page.set_input_files("#file", str(_recipients_csv(tmp_path / "people.csv")))
    page.fill("#list-name", "customers")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*/lists/imports/\d+$"))
    expect(page.locator("#import-progress")).to_have_attribute("data-state", "done")
    expect(page.locator("[data-count=imported]")).to_have_text(str(RECIPIENTS))
    expect(page.locator("[data-count=rejected]")).to_have_text("1")
    expect(page.locator("#rejected-rows")).to_contain_text("12")
    expect(page.locator("#rejected-rows")).to_contain_text("invalid email address")
    _shot(page, "04-import-report")

    page.goto(f"{served}/lists")
    _shot(page, "05-lists")
    page.click("text=customers >> nth=0")
    page.fill("input[name=q]", "person00")
    expect(page.locator("#list-results")).to_contain_text("person009@example.com")
    _shot(page, "06-list-recipients")

    # The template editor previews for a chosen recipient.
    page.goto(f"{served}/templates/newsletter")
    expect(page.locator("#preview-subject")).to_contain_text("Person 0, your Pro update")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_contain_text("Hi Person 0,")
    page.click("#check-template")
    expect(page.locator("#check-result")).to_contain_text(f"All {RECIPIENTS} recipients")
    # A viewport shot: full-page captures of a page with a frame leave the frame blank.
    _shot(page, "07-template-editor", full_page=False)

    # A campaign from the template: created, previewed, scheduled now, watched to the end.
    page.goto(f"{served}/campaigns/new")
    page.fill("#name", "Spring newsletter")
    page.select_option("#list", "customers")
    page.select_option("#template", "newsletter")
    page.fill("#from_address", "Northwind <news@northwind.example>")
    relay = smtp_server.url.removeprefix("smtp://")
    expect(page.locator("#relay option").first).to_have_text("any relay (by weight)")
    page.select_option("#relay", relay)
    _shot(page, "08-campaign-new")
    page.click("text=Create draft")
    page.wait_for_url(re.compile(r".*/campaigns/\d+\?notice=created$"))
    campaign_id = int(re.search(r"/campaigns/(\d+)", page.url).group(1))
    expect(page.locator("#campaign-head .sub")).to_contain_text(f"relay {relay}")
    expect(page.locator("#preview-subject")).to_contain_text("your Pro update")
    expect(page.frame_locator(".preview-frame").locator("h1")).to_contain_text("Hi Person 0,")
    _shot(page, "09-campaign-draft-preview", full_page=False)

    start_worker(concurrency=2)
    page.check("input[name=when][value=now]")
    page.click("#schedule-button")
    page.wait_for_url(re.compile(rf".*/campaigns/{campaign_id}\?notice=scheduled$"))
    expect(page.locator("#campaign-live")).to_have_attribute(
        "data-state", "completed", timeout=LIVE_TIMEOUT_MS
    )
    expect(page.locator("#progress-percent")).to_have_text("100%")
    expect(page.locator("[data-count=sent]")).to_have_text(str(RECIPIENTS))
    expect(page.locator("#charts svg.chart").first).to_be_visible(timeout=30_000)
    _shot(page, "10-campaign-completed")
    received = {rcpt for message in smtp_server.messages for rcpt in message.rcpt_tos}
    assert len(received) == RECIPIENTS == len(smtp_server.messages)

    page.fill("input[name=q]", "person042")
    page.click("text=person042@example.com")
    expect(page.locator("#recipient-detail")).to_contain_text("History")
    _shot(page, "11-campaign-recipient")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#progress-percent")).to_have_text("100%")
    _shot(page, "12-campaign-phone")


def test_the_workers_page_shows_workers_online_then_gone(
    served: str, browser_page: object, start_worker
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    _sign_in(page, served)
    page.goto(f"{served}/workers")
    expect(page.locator(".empty .big")).to_have_text("No worker has been seen")
    _shot(page, "13-workers-none")

    first = start_worker(concurrency=1)
    second = start_worker(concurrency=1, dispatcher=False)
    for worker in (first, second):
        row = page.locator(f"#workers-table tr[data-pid='{worker.pid}']")
        expect(row).to_have_attribute("data-online", "yes", timeout=60_000)
        expect(row).to_contain_text("online")
    # Each `edm worker` is two Celery nodes: its campaign processes and its transactional lane.
    expect(page.locator("#workers-online")).to_have_text("4", timeout=60_000)
    expect(page.locator("#transactional-processes")).to_have_text("2")
    _shot(page, "14-workers-online")

    _stop_process_group(second)
    row = page.locator(f"#workers-table tr[data-pid='{second.pid}']")
    expect(row).to_have_attribute("data-online", "no", timeout=30_000)
    expect(row).to_contain_text("gone")
    expect(page.locator("#workers-online")).to_have_text("2", timeout=30_000)
    expect(page.locator("#transactional-processes")).to_have_text("1")
    _shot(page, "15-workers-one-gone")

    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "16-workers-phone")
    assert os.path.exists(ARTIFACTS / "16-workers-phone.png")
