"""Roles and API tokens on real SQLite and PostgreSQL: what a viewer and an editor may not do,
tokens that are revoked or expired, what a password change ends. (Test messages from a foreign
domain: tests/integration/test_dashboard_api.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from campaigns.core.errors import NotFound
from campaigns.core.models import ApiToken, utc_now
from campaigns.core.storage import Database
from dashboard.accounts import create_user, delete_user, set_password
from dashboard.bearer_tokens import create_api_token, list_api_tokens, revoke_api_token
from dashboard.roles import Role
from tests.dashboard_helpers import (
    SAMPLE_CSV,
    Dashboard,
    dashboard_settings,
    draft_campaign,
    running_dashboard,
    sign_in,
)

PASSWORD = "a long enough password"


@pytest.fixture
def dashboard(database: Database, tmp_path: Path) -> Iterator[Dashboard]:
    with running_dashboard(database, dashboard_settings(tmp_path)) as running:
        yield running


def _bearer_of(database: Database, email: str, role: Role) -> dict[str, str]:
    create_user(database, email, PASSWORD, role=role)
    return {"Authorization": f"Bearer {create_api_token(database, email)}"}


def test_a_viewer_reads_but_cannot_schedule_upload_or_save(dashboard: Dashboard) -> None:
    campaign_id = draft_campaign(dashboard)
    viewer = _bearer_of(dashboard.database, "viewer@example.com", Role.VIEWER)
    client = dashboard.client

    assert client.get(f"/api/campaigns/{campaign_id}", headers=viewer).status_code == 200
    assert client.get("/api/me", headers=viewer).json()["role"] == "viewer"
    scheduled = client.post(
        f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"}, headers=viewer
    )
    assert scheduled.status_code == 403
    assert scheduled.json() == {"detail": "this needs the editor role; your account is a viewer"}
    uploaded = client.post(
        "/api/imports",
        files={"file": ("more.csv", SAMPLE_CSV.encode(), "text/csv")},
        data={"list": "more"},
        headers=viewer,
    )
    assert uploaded.status_code == 403
    saved = client.put(
        "/api/templates/hello", json={"subject": "Hi", "html": "<p>Hi</p>"}, headers=viewer
    )
    assert saved.status_code == 403
    # Nothing changed.
    assert dashboard.get(f"/api/campaigns/{campaign_id}").json()["campaign"]["state"] == "draft"
    assert [row["name"] for row in dashboard.get("/api/lists").json()] == ["people"]
    assert dashboard.get("/api/templates/hello").status_code == 404


def test_a_viewers_pages_hide_changes_and_refuse_a_posted_form(dashboard: Dashboard) -> None:
    campaign_id = draft_campaign(dashboard)
    create_user(dashboard.database, "viewer@example.com", PASSWORD, role=Role.VIEWER)
    browser = TestClient(dashboard.client.app, base_url="http://dashboard.test")
    csrf = sign_in(browser, "viewer@example.com", PASSWORD)
    page = browser.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200
    # The page offers a viewer nothing it would refuse; the admin's shows the controls.
    assert "schedule-form" not in page.text and "Cancel campaign" not in page.text
    assert "upload-form" not in browser.get("/lists").text
    assert "Cancel campaign" in dashboard.get(f"/campaigns/{campaign_id}").text
    assert "upload-form" in dashboard.get("/lists").text
    answer = browser.post(f"/campaigns/{campaign_id}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 403
    assert "this needs the editor role" in answer.text
    assert dashboard.get(f"/api/campaigns/{campaign_id}").json()["campaign"]["state"] == "draft"


def test_an_editor_schedules_but_cannot_manage_accounts(dashboard: Dashboard) -> None:
    campaign_id = draft_campaign(dashboard)
    editor = _bearer_of(dashboard.database, "editor@example.com", Role.EDITOR)
    client = dashboard.client
    scheduled = client.post(
        f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"}, headers=editor
    )
    assert scheduled.status_code == 200, scheduled.text

    new_account = {"email": "x@example.com", "role": "admin", "password": PASSWORD}
    assert client.get("/api/users", headers=editor).status_code == 403
    assert client.post("/api/users", json=new_account, headers=editor).status_code == 403
    promoted = client.put(
        "/api/users/editor@example.com/role", json={"role": "admin"}, headers=editor
    )
    assert promoted.status_code == 403
    assert client.delete("/api/users/admin@example.com", headers=editor).status_code == 403
    emails = {row["email"]: row["role"] for row in dashboard.get("/api/users").json()}
    assert emails == {"admin@example.com": "admin", "editor@example.com": "editor"}


def test_an_admin_manages_accounts_but_never_removes_the_last_admin(
    dashboard: Dashboard,
) -> None:
    made = dashboard.post(
        "/api/users", json={"email": "Ed@Example.com", "role": "editor", "password": PASSWORD}
    )
    assert made.status_code == 201, made.text
    assert (made.json()["email"], made.json()["role"]) == ("ed@example.com", "editor")
    weak = dashboard.post(
        "/api/users", json={"email": "w@example.com", "role": "viewer", "password": "aaaaaaaaaaaa"}
    )
    assert weak.status_code == 400
    assert weak.json()["detail"].startswith("password: one character repeated")

    demoted = dashboard.put("/api/users/admin@example.com/role", json={"role": "viewer"})
    assert demoted.status_code == 400
    assert "is the only admin" in demoted.json()["detail"]
    assert dashboard.delete("/api/users/admin@example.com").status_code == 400

    assert (
        dashboard.put("/api/users/ed@example.com/role", json={"role": "viewer"}).json()["role"]
        == "viewer"
    )
    assert dashboard.delete("/api/users/ed@example.com").status_code == 204
    assert [row["email"] for row in dashboard.get("/api/users").json()] == ["admin@example.com"]


def test_a_revoked_token_is_refused(dashboard: Dashboard) -> None:
    token = create_api_token(dashboard.database, "admin@example.com", name="deploy script")
    bearer = {"Authorization": f"Bearer {token}"}
    assert dashboard.client.get("/api/lists", headers=bearer).status_code == 200
    listed = {
        row["name"]: row for row in dashboard.get("/api/users/admin@example.com/tokens").json()
    }
    assert listed["deploy script"]["last_used_at"] is not None

    assert dashboard.delete(f"/api/tokens/{listed['deploy script']['id']}").status_code == 204
    refused = dashboard.client.get("/api/lists", headers=bearer)
    assert refused.status_code == 401
    assert dashboard.delete(f"/api/tokens/{listed['deploy script']['id']}").status_code == 404


def test_an_expired_token_is_refused(dashboard: Dashboard) -> None:
    token = create_api_token(dashboard.database, "admin@example.com", expires_days=1)
    bearer = {"Authorization": f"Bearer {token}"}
    assert dashboard.client.get("/api/lists", headers=bearer).status_code == 200
    [_first, made] = list_api_tokens(dashboard.database, "admin@example.com")
    with dashboard.database.session() as session:
        # As it is a day later.
        session.execute(update(ApiToken).where(ApiToken.id == made.id).values(expires_at=utc_now()))
    assert dashboard.client.get("/api/lists", headers=bearer).status_code == 401
    assert dashboard.get("/api/lists").status_code == 200


def test_a_password_change_ends_sessions_and_revokes_tokens(dashboard: Dashboard) -> None:
    browser = TestClient(dashboard.client.app, base_url="http://dashboard.test")
    sign_in(browser)
    assert browser.get("/api/me").status_code == 200

    set_password(dashboard.database, "admin@example.com", "a brand new password")
    assert browser.get("/api/me").status_code == 401
    assert dashboard.get("/api/me").status_code == 401
    assert list_api_tokens(dashboard.database, "admin@example.com") == []


def test_a_password_change_keeping_tokens_still_ends_sessions(dashboard: Dashboard) -> None:
    browser = TestClient(dashboard.client.app, base_url="http://dashboard.test")
    sign_in(browser)
    set_password(dashboard.database, "admin@example.com", "a brand new password", keep_tokens=True)
    assert browser.get("/api/me").status_code == 401
    assert dashboard.get("/api/me").status_code == 200


def test_a_deleted_account_signs_nobody_in(dashboard: Dashboard) -> None:
    editor = _bearer_of(dashboard.database, "editor@example.com", Role.EDITOR)
    browser = TestClient(dashboard.client.app, base_url="http://dashboard.test")
    sign_in(browser, "editor@example.com", PASSWORD)
    delete_user(dashboard.database, "editor@example.com")
    assert browser.get("/api/me").status_code == 401
    assert dashboard.client.get("/api/me", headers=editor).status_code == 401


def test_revoking_a_token_that_does_not_exist_names_it(dashboard: Dashboard) -> None:
    with pytest.raises(NotFound, match="ID: no API token 999"):
        revoke_api_token(dashboard.database, 999)
