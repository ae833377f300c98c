"""The server-rendered pages through a signed-in browser session (TestClient): every page answers,
forms need the CSRF token, and a refusal is a page with its reason, never a stack trace."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.core.storage import Database
from dashboard.worker_monitor import WorkerMonitor
from tests.dashboard_helpers import (
    SAMPLE_CSV,
    Dashboard,
    dashboard_settings,
    draft_campaign,
    running_dashboard,
    sign_in,
)


@pytest.fixture
def browser(database: Database, tmp_path: Path) -> Iterator[tuple[Dashboard, str]]:
    settings = dashboard_settings(tmp_path)
    monitor = WorkerMonitor(settings, database)
    with running_dashboard(database, settings, monitor=monitor) as dashboard:
        csrf = sign_in(dashboard.client)
        yield dashboard, csrf


def test_every_page_answers_with_the_signed_in_layout(browser: tuple[Dashboard, str]) -> None:
    dashboard, _csrf = browser
    campaign_id = draft_campaign(dashboard)
    import_id = dashboard.get("/api/imports").json()[0]["id"]
    list_id = dashboard.get("/api/lists").json()[0]["id"]
    for path in (
        "/campaigns",
        "/campaigns/new",
        f"/campaigns/{campaign_id}",
        f"/campaigns/{campaign_id}/live",
        f"/campaigns/{campaign_id}/charts",
        f"/campaigns/{campaign_id}/preview",
        f"/campaigns/{campaign_id}/recipients?q=ann",
        "/lists",
        f"/lists/{list_id}",
        f"/lists/{list_id}/recipients?q=b",
        f"/lists/imports/{import_id}",
        f"/lists/imports/{import_id}/progress",
        "/templates",
        "/templates/newsletter",
        "/workers",
        "/workers/live",
    ):
        answer = dashboard.client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert "text/html" in answer.headers["content-type"]
        assert "default-src 'self'" in answer.headers["content-security-policy"]
    page = dashboard.client.get(f"/campaigns/{campaign_id}").text
    assert 'sandbox srcdoc="' not in page  # the preview is a fragment loaded after the page
    preview = dashboard.client.get(f"/campaigns/{campaign_id}/preview").text
    assert '<iframe class="preview-frame" title="HTML part" sandbox srcdoc="' in preview
    # The message is escaped into the attribute: none of its markup becomes part of the page.
    srcdoc = preview.split('srcdoc="', 1)[1].split('"', 1)[0]
    assert "&lt;h1" in srcdoc and "Hi Ann," in srcdoc and "<" not in srcdoc


def test_a_new_campaign_form_with_a_bad_sender_shows_the_reason(
    browser: tuple[Dashboard, str],
) -> None:
    dashboard, csrf = browser
    dashboard.import_csv(SAMPLE_CSV, "people")
    answer = dashboard.client.post(
        "/campaigns/new",
        data={
            "csrf_token": csrf,
            "name": "Spring",
            "list": "people",
            "template": "newsletter",
            "from_address": "nobody",
            "tracking": "on",
        },
    )
    assert answer.status_code == 400
    assert "from address" in answer.text
    assert 'value="Spring"' in answer.text  # what was typed is kept
    assert "Traceback" not in answer.text


def test_the_new_campaign_form_chooses_a_relay_and_names_one_not_configured(
    database: Database, tmp_path: Path
) -> None:
    relays = [
        {"name": "primary", "url": "smtp://127.0.0.1:2525"},
        {"name": "backup", "url": "smtp://127.0.0.1:2526"},
    ]
    settings = dashboard_settings(tmp_path, extra={"relays": relays})
    with running_dashboard(database, settings) as dashboard:
        csrf = sign_in(dashboard.client)
        dashboard.import_csv(SAMPLE_CSV, "people")
        form = dashboard.client.get("/campaigns/new").text
        assert '<option value="">any relay (by weight)</option>' in form
        assert '<option value="primary">primary</option>' in form
        assert '<option value="backup">backup</option>' in form
        fields = {
            "csrf_token": csrf,
            "name": "Spring",
            "list": "people",
            "template": "newsletter",
            "from_address": "news@example.com",
        }

        refused = dashboard.client.post("/campaigns/new", data={**fields, "relay": "gone"})
        assert refused.status_code == 400
        assert "relay 'gone' is not configured (relays: backup, primary)" in html.unescape(
            refused.text
        )
        assert "Traceback" not in refused.text
        assert dashboard.get("/api/campaigns").json() == []

        created = dashboard.client.post(
            "/campaigns/new", data={**fields, "relay": "backup"}, follow_redirects=False
        )
        assert created.status_code == 303
        (campaign,) = dashboard.get("/api/campaigns").json()
        assert campaign["relays"] == ["backup"]
        assert "relay backup" in dashboard.client.get(f"/campaigns/{campaign['id']}").text

        any_relay = dashboard.client.post("/campaigns/new", data={**fields, "relay": ""})
        assert any_relay.status_code == 200
        assert dashboard.get("/api/campaigns").json()[0]["relays"] is None


def test_forms_without_the_csrf_token_are_refused(browser: tuple[Dashboard, str]) -> None:
    dashboard, _csrf = browser
    campaign_id = draft_campaign(dashboard)
    answer = dashboard.client.post(f"/campaigns/{campaign_id}/schedule", data={"when": "now"})
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert dashboard.get(f"/api/campaigns/{campaign_id}").json()["campaign"]["state"] == "draft"


def test_campaign_forms_schedule_pause_and_refuse_with_reasons(
    browser: tuple[Dashboard, str],
) -> None:
    dashboard, csrf = browser
    campaign_id = draft_campaign(dashboard)
    bad = dashboard.client.post(
        f"/campaigns/{campaign_id}/schedule",
        data={"csrf_token": csrf, "when": "at", "at": "", "timezone": "UTC"},
    )
    assert bad.status_code == 400
    assert "at: a date and time is required" in bad.text

    scheduled = dashboard.client.post(
        f"/campaigns/{campaign_id}/schedule",
        data={"csrf_token": csrf, "when": "at", "at": "2031-05-01T10:00", "timezone": "Asia/Tokyo"},
        follow_redirects=False,
    )
    assert scheduled.status_code == 303
    assert scheduled.headers["location"] == f"/campaigns/{campaign_id}?notice=scheduled"
    detail = dashboard.get(f"/api/campaigns/{campaign_id}").json()
    assert detail["campaign"]["send_at"].startswith("2031-05-01T01:00:00")

    paused = dashboard.client.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 200  # followed the redirect to the page
    assert "Paused: no new message starts" in paused.text
    again = dashboard.client.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert "cannot pause it" in again.text
    retry = dashboard.client.post(f"/campaigns/{campaign_id}/retry", data={"csrf_token": csrf})
    assert retry.status_code == 200
    assert "Nothing to retry" in retry.text


def test_templates_are_created_from_a_copy_and_names_are_checked(
    browser: tuple[Dashboard, str],
) -> None:
    dashboard, csrf = browser
    made = dashboard.client.post(
        "/templates/new",
        data={"csrf_token": csrf, "name": "spring", "copy_of": "announcement"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/templates/spring"
    assert (dashboard.settings.resolved_templates_dir / "spring" / "body.html").exists()
    taken = dashboard.client.post("/templates/new", data={"csrf_token": csrf, "name": "spring"})
    assert taken.status_code == 400
    assert "exists already" in taken.text
    bad = dashboard.client.post("/templates/new", data={"csrf_token": csrf, "name": "../x"})
    assert bad.status_code == 400
    assert "template name" in bad.text


def test_missing_things_are_pages_that_say_so(browser: tuple[Dashboard, str]) -> None:
    dashboard, _csrf = browser
    for path, text in (
        ("/campaigns/404", "campaign 404 not found"),
        ("/lists/404", "list 404 not found"),
        ("/lists/imports/404", "import 404 not found"),
        ("/templates/nothing-here", "template 'nothing-here' not found"),
        ("/no/such/page", "Not Found"),
    ):
        answer = dashboard.client.get(path)
        assert answer.status_code == 404, path
        assert text in html.unescape(answer.text)
        assert "<!DOCTYPE html>" in answer.text


def test_the_upload_area_and_empty_states_are_there(browser: tuple[Dashboard, str]) -> None:
    dashboard, _csrf = browser
    lists = dashboard.client.get("/lists").text
    assert 'id="dropzone"' in lists
    assert "No lists yet" in lists
    assert "No campaigns yet" in dashboard.client.get("/campaigns").text
    assert "Import a recipient list first" in dashboard.client.get("/campaigns/new").text
    assert "No worker has been seen" in dashboard.client.get("/workers").text
