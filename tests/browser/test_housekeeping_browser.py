"""Housekeeping in a real browser against a real ``edm serve``, ``edm worker`` and SMTP server:
a draft edited then sent with its new template, then archived, cloned and the clone deleted; a
list deleted with its people; what remains checked in the database each time."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from campaigns.core.models import Campaign, Recipient, RecipientList
from campaigns.core.storage import open_database
from tests.browser.test_dashboard_browser import (  # noqa: F401  (fixtures)
    LIVE_TIMEOUT_MS,
    _shot,
    _sign_in,
    browser_page,
    served,
)
from tests.conftest import run_edm
from tests.smtp_server import RecordingSmtpServer

PEOPLE = "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(5))


def _scalar(url: str, query: object) -> object:
    database = open_database(url)
    try:
        with database.session() as session:
            return session.scalar(query)  # type: ignore[call-overload]
    finally:
        database.dispose()


def test_a_draft_edited_then_sent_then_archived_and_a_list_deleted(
    served: str,  # noqa: F811  (the fixture imported above)
    browser_page: object,  # noqa: F811
    start_worker,
    smtp_server: RecordingSmtpServer,
    edm_env: dict[str, str],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    database_url = edm_env["EDM_DATABASE_URL"]
    page.on("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    missing: list[str] = []
    page.on(  # type: ignore[attr-defined]
        "response", lambda answer: missing.append(answer.url) if answer.status == 404 else None
    )
    for name in ("people", "test-upload"):
        (tmp_path / f"{name}.csv").write_text(PEOPLE)
        imported = run_edm(
            ["lists", "import", str(tmp_path / f"{name}.csv"), "--list", name], edm_env
        )
        assert imported.returncode == 0, imported.stderr
    _sign_in(page, served)

    # A draft made with the wrong template is edited, not started over.
    page.goto(f"{served}/campaigns/new")
    page.fill("#name", "Launch")
    page.select_option("#list", "people")
    page.select_option("#template", "newsletter")
    page.fill("#from_address", "Northwind <news@northwind.example>")
    page.click("text=Create draft")
    page.wait_for_url(re.compile(r".*/campaigns/\d+\?notice=created$"))
    campaign_id = int(re.search(r"/campaigns/(\d+)", page.url).group(1))
    page.click("text=Edit draft")
    page.fill("#name", "Launch, fixed")
    page.select_option("#template", "announcement")
    _shot(page, "hk-01-draft-edit")
    page.click("text=Save draft")
    page.wait_for_url(re.compile(rf".*/campaigns/{campaign_id}\?notice=edited$"))
    expect(page.locator("#campaign-head .sub")).to_contain_text("template announcement")
    expect(page.locator("#campaign-head h1")).to_contain_text("Launch, fixed")

    start_worker(concurrency=1)
    page.check("input[name=when][value=now]")
    page.click("#schedule-button")
    expect(page.locator("#campaign-live")).to_have_attribute(
        "data-state", "completed", timeout=LIVE_TIMEOUT_MS
    )
    assert len(smtp_server.messages) == 5
    assert all(b"Northwind Flows" in message.data for message in smtp_server.messages)

    # Sent: archived, not deleted; its history stays.
    page.click("#campaign-head button:has-text('Archive')")
    page.wait_for_url(re.compile(rf".*/campaigns/{campaign_id}\?notice=archived$"))
    page.goto(f"{served}/campaigns")
    expect(page.locator("table.data")).to_have_count(0)
    page.goto(f"{served}/campaigns?archived=true")
    expect(page.locator("table.data")).to_contain_text("Launch, fixed")
    expect(page.locator("table.data")).to_contain_text("100.0%")
    _shot(page, "hk-02-archived-campaigns")
    assert _scalar(database_url, select(Campaign.archived_at).where(Campaign.id == campaign_id))

    # A clone is a new draft; deleting it leaves the original as it was.
    page.goto(f"{served}/campaigns/{campaign_id}")
    page.click("#campaign-head button:has-text('Clone')")
    page.wait_for_url(re.compile(r".*/campaigns/\d+\?notice=cloned$"))
    clone_id = int(re.search(r"/campaigns/(\d+)", page.url).group(1))
    assert clone_id != campaign_id
    page.click("#campaign-head button:has-text('Delete draft')")
    page.wait_for_url(re.compile(r".*/campaigns\?notice=deleted$"))
    assert _scalar(database_url, select(func.count()).where(Campaign.id == clone_id)) == 0
    assert _scalar(database_url, select(func.count()).where(Campaign.id == campaign_id)) == 1

    # The list a campaign sent to cannot go; the test upload goes with its people.
    page.goto(f"{served}/lists")
    page.click("text=people >> nth=0")
    expect(page.locator("button:has-text('Delete list')")).to_be_disabled()
    page.goto(f"{served}/lists")
    page.click("text=test-upload >> nth=0")
    _shot(page, "hk-03-list-delete")
    page.click("button:has-text('Delete list')")
    page.wait_for_url(re.compile(r".*/lists\?deleted=test-upload$"))
    names = _scalar(database_url, select(func.count()).where(RecipientList.name == "test-upload"))
    assert names == 0
    assert _scalar(database_url, select(func.count()).select_from(Recipient)) == 5
    # Nothing the pages load is missing (a live part of the deleted clone may have asked once
    # more between its deletion and the page leaving); the favicon is there.
    assert [url for url in missing if f"/campaigns/{clone_id}/" not in url] == []
    assert 'rel="icon" href="/static/favicon.svg"' in page.content()  # type: ignore[attr-defined]
    favicon = page.request.get(f"{served}/static/favicon.svg")  # type: ignore[attr-defined]
    assert favicon.status == 200
