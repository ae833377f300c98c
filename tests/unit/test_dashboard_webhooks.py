"""The webhooks API and page: admins only, the secret shown once, bad input named, paused
endpoints shown with a resume action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from campaigns.core.models import WebhookEndpoint
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.bearer_tokens import create_api_token
from dashboard.roles import Role
from tests.dashboard_helpers import (
    FAST_PASSWORD_HASHER,
    Dashboard,
    dashboard_settings,
    running_dashboard,
    sign_in,
)

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def dashboard(database: Database, tmp_path: Path) -> Iterator[Dashboard]:
    settings = dashboard_settings(tmp_path, outgoing_webhook_allow_private=True)
    with running_dashboard(database, settings) as running:
        yield running


def test_an_admin_adds_an_endpoint_and_sees_its_secret_only_then(dashboard: Dashboard) -> None:
    added = dashboard.post("/api/webhooks", json={"url": HOOK, "events": ["sent", "opened"]})
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["secret"].startswith("whsec_") and body["state"] == "active"
    listed = dashboard.get("/api/webhooks").json()
    assert [(each["id"], each["events"]) for each in listed] == [(body["id"], ["sent", "opened"])]
    assert "secret" not in listed[0]
    assert dashboard.get(f"/api/webhooks/{body['id']}/attempts").json() == []
    assert dashboard.delete(f"/api/webhooks/{body['id']}").status_code == 204
    assert dashboard.get(f"/api/webhooks/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "named"),
    [
        ({"url": "ftp://example.com/", "events": ["sent"]}, 400, "url"),
        ({"url": HOOK, "events": ["delivered"]}, 422, "events"),
        ({"url": HOOK, "events": []}, 422, "events"),
        ({"url": HOOK, "events": ["sent"], "campaign_id": 99}, 404, "campaign"),
        ({"url": HOOK, "events": ["sent"], "category": "Bad Name"}, 400, "category"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    dashboard: Dashboard, payload: dict[str, object], status: int, named: str
) -> None:
    answer = dashboard.post("/api/webhooks", json=payload)
    assert answer.status_code == status, answer.text
    assert named in answer.text
    assert dashboard.get("/api/webhooks").json() == []


def test_private_destinations_are_refused_unless_the_setting_allows_them(
    database: Database, tmp_path: Path
) -> None:
    with running_dashboard(database, dashboard_settings(tmp_path)) as dashboard:
        answer = dashboard.post("/api/webhooks", json={"url": HOOK, "events": ["sent"]})
    assert answer.status_code == 400
    assert "EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE" in answer.json()["detail"]


def test_an_editor_may_not_manage_webhooks(dashboard: Dashboard) -> None:
    create_user(
        dashboard.database,
        "ed@example.com",
        "a long passphrase",
        role=Role.EDITOR,
        hasher=FAST_PASSWORD_HASHER,
    )
    editor = {"Authorization": f"Bearer {create_api_token(dashboard.database, 'ed@example.com')}"}
    assert dashboard.client.get("/api/webhooks", headers=editor).status_code == 403
    answer = dashboard.client.post(
        "/api/webhooks", json={"url": HOOK, "events": ["sent"]}, headers=editor
    )
    assert answer.status_code == 403


def test_the_page_shows_a_paused_endpoint_and_resumes_it(dashboard: Dashboard) -> None:
    endpoint_id = dashboard.post("/api/webhooks", json={"url": HOOK, "events": ["sent"]}).json()[
        "id"
    ]
    with dashboard.database.session() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(state="paused", consecutive_failures=30)
        )
    browser = dashboard.client
    csrf = sign_in(browser)
    page = browser.get("/webhooks")
    assert page.status_code == 200
    assert "paused · 30 failures in a row" in page.text
    assert f"/webhooks/{endpoint_id}/resume" in page.text
    resumed = browser.post(
        f"/webhooks/{endpoint_id}/resume", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert resumed.status_code == 303
    assert dashboard.get(f"/api/webhooks/{endpoint_id}").json()["state"] == "active"


def test_the_page_adds_an_endpoint_and_shows_the_secret_once(dashboard: Dashboard) -> None:
    browser = dashboard.client
    csrf = sign_in(browser)
    added = browser.post(
        "/webhooks/new", data={"csrf_token": csrf, "url": HOOK, "events": ["sent", "bounced"]}
    )
    assert added.status_code == 201
    assert "whsec_" in added.text
    assert "whsec_" not in browser.get("/webhooks").text
    refused = browser.post(
        "/webhooks/new", data={"csrf_token": csrf, "url": HOOK, "events": ["nope"]}
    )
    assert refused.status_code == 400 and "unknown event" in refused.text
