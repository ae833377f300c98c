"""The dashboard's JSON API on real SQLite and PostgreSQL: every endpoint, its auth failures and
its bad input (a 4xx with a one-line reason, never a 500).

The test message sent to a real relay is in tests/integration/test_dashboard_api.py."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from campaigns.core.models import DashboardUser, Job, JobState
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.app import create_app
from dashboard.roles import Role
from tests.dashboard_helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    FAST_PASSWORD_HASHER,
    SAMPLE_CSV,
    Dashboard,
    dashboard_settings,
    running_dashboard,
    sign_in,
)


@pytest.fixture
def dashboard(database: Database, tmp_path: Path) -> Iterator[Dashboard]:
    with running_dashboard(database, dashboard_settings(tmp_path)) as running:
        yield running


def _campaign(dashboard: Dashboard, list_name: str = "people", **overrides: object) -> dict:
    body = {
        "name": "Spring news",
        "list": list_name,
        "template": "newsletter",
        "from_address": "Northwind <news@northwind.example>",
        **overrides,
    }
    answer = dashboard.post("/api/campaigns", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


# --- Authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/lists"),
        ("get", "/api/campaigns"),
        ("post", "/api/campaigns"),
        ("get", "/api/templates"),
        ("get", "/api/imports"),
        ("get", "/api/me"),
        ("get", "/api/openapi.json"),
    ],
)
def test_the_api_refuses_requests_without_credentials(
    dashboard: Dashboard, method: str, path: str
) -> None:
    answer = getattr(dashboard.client, method)(path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "sign in" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer edm_not-a-real-token", "API token not recognised"),
        ("Bearer something", "API token not recognised"),
        ("Basic YWRtaW46cGFzcw==", "expected 'Bearer <token>'"),
        ("Bearer", "expected 'Bearer <token>'"),
    ],
)
def test_a_wrong_or_malformed_token_is_refused(
    dashboard: Dashboard, header: str, reason: str
) -> None:
    answer = dashboard.client.get("/api/lists", headers={"Authorization": header})
    assert answer.status_code == 401
    assert reason in answer.json()["detail"]


def test_pages_send_a_stranger_to_the_sign_in_page(dashboard: Dashboard) -> None:
    answer = dashboard.client.get("/campaigns?page=2", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fcampaigns%3Fpage%3D2"


def test_tracking_and_webhooks_stay_public(dashboard: Dashboard) -> None:
    # A forged token is a plain 404, and an unconfigured provider says so: neither asks to sign in.
    assert dashboard.client.get("/o/forged.gif").status_code == 404
    assert dashboard.client.get("/u/forged").status_code == 404
    assert dashboard.client.post("/webhooks/mailgun", json={}).status_code == 404


def test_signing_in_sets_a_protected_session_cookie_and_signing_out_ends_it(
    dashboard: Dashboard,
) -> None:
    client = dashboard.client
    form = client.get("/login")
    assert form.status_code == 200
    login_csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    wrong = client.post(
        "/login",
        data={"email": "admin@example.com", "password": "nope", "csrf_token": login_csrf},
    )
    assert wrong.status_code == 401
    assert "do not match an account" in wrong.text
    login_csrf = wrong.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]

    answer = client.post(
        "/login",
        data={
            "email": "admin@example.com",
            "password": "correct horse battery",
            "csrf_token": login_csrf,
            "next": "https://evil.example/phish",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"  # never to another site
    cookie = answer.headers["set-cookie"]
    assert "edm_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie

    me = client.get("/api/me").json()
    assert me["email"] == "admin@example.com"
    csrf = me["csrf_token"]
    assert csrf

    # A cookie alone does not authorise a change: another site could make the browser send it.
    refused = client.post("/api/campaigns/1/pause")
    assert refused.status_code == 403
    assert "security token" in refused.json()["detail"]
    allowed = client.post("/api/campaigns/1/pause", headers={"X-CSRF-Token": csrf})
    assert allowed.status_code == 404  # past the CSRF check: there is no campaign 1

    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/api/me").status_code == 401


def test_a_sign_in_form_without_its_token_is_refused(dashboard: Dashboard) -> None:
    answer = dashboard.client.post(
        "/login", data={"email": "admin@example.com", "password": "correct horse battery"}
    )
    assert answer.status_code == 400
    assert "expired" in answer.text


def test_a_session_cookie_from_nowhere_is_refused(dashboard: Dashboard) -> None:
    dashboard.client.cookies.set("edm_session", "made-up")
    answer = dashboard.client.get("/api/lists")
    assert answer.status_code == 401
    assert "session has ended" in answer.json()["detail"]


def test_the_openapi_description_is_served_to_signed_in_users(dashboard: Dashboard) -> None:
    spec = dashboard.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/campaigns/{campaign_id}/schedule" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    # The public routes are not part of the API a script drives.
    assert not any(path.startswith(("/o/", "/webhooks")) for path in spec["paths"])


# --- Lists and imports ---------------------------------------------------------------------


def test_an_uploaded_csv_is_imported_with_a_report_of_rejected_rows(dashboard: Dashboard) -> None:
    state = dashboard.import_csv(SAMPLE_CSV, "people")
    assert state["state"] == "done", state
    assert state["counts"] == {
        "imported": 3,
        "updated": 0,
        "duplicates": 1,
        "rejected": 1,
        "suppressed": 0,
    }
    assert state["percent"] == 100.0
    assert state["rejected_rows"] == [{"line": 4, "reason": state["rejected_rows"][0]["reason"]}]
    assert "invalid email address 'not-an-address'" in state["rejected_rows"][0]["reason"]

    rejected = dashboard.get(f"/api/imports/{state['id']}/rejected.csv")
    assert rejected.status_code == 200
    assert rejected.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(rejected.text)))
    assert rows[0] == ["line", "reason"]
    assert rows[1][0] == "4"

    lists = dashboard.get("/api/lists").json()
    assert [(item["name"], item["recipients"]) for item in lists] == [("people", 3)]
    assert lists[0]["field_names"] == ["email", "first_name", "city", "plan"]
    assert dashboard.get("/api/imports").json()[0]["id"] == state["id"]


def test_a_csv_that_cannot_be_read_fails_with_its_reason_and_imports_nobody(
    dashboard: Dashboard,
) -> None:
    state = dashboard.import_csv("name,city\nAnn,Lisbon\n", "people", name="contacts.csv")
    assert state["state"] == "failed"
    assert state["error"].startswith("contacts.csv: line 1:")
    assert "email" in state["error"]
    assert "uploads" not in state["error"]  # names the user's file, not the server's copy
    assert dashboard.get("/api/lists").json() == []


@pytest.mark.parametrize(
    ("files", "data", "status", "reason"),
    [
        ({"file": ("a.csv", b"", "text/csv")}, {"list": "x"}, 400, "a.csv: the file is empty"),
        ({"file": ("a.csv", b"email\na@b.c\n", "text/csv")}, {}, 422, "list: Field required"),
        ({"file": ("a.csv", b"email\na@b.c\n", "text/csv")}, {"list": " "}, 400, "list name"),
        (None, {"list": "x"}, 422, "file: Field required"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(
    dashboard: Dashboard, files: dict | None, data: dict, status: int, reason: str
) -> None:
    answer = dashboard.post("/api/imports", files=files, data=data)
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]


def test_recipients_are_found_by_the_start_of_their_address_a_page_at_a_time(
    dashboard: Dashboard,
) -> None:
    rows = "".join(f"person{i:02d}@example.com,P{i}\n" for i in range(30))
    dashboard.import_csv("email,first_name\n" + rows + "other@example.com,O\n", "many")
    list_id = dashboard.get("/api/lists").json()[0]["id"]

    first = dashboard.get(f"/api/lists/{list_id}/recipients", params={"q": "PERSON", "limit": 20})
    page = first.json()
    assert [r["email"] for r in page["recipients"]][:2] == [
        "person00@example.com",
        "person01@example.com",
    ]
    assert len(page["recipients"]) == 20
    second = dashboard.get(
        f"/api/lists/{list_id}/recipients",
        params={"q": "person", "after": page["next_after"], "limit": 20},
    ).json()
    assert len(second["recipients"]) == 10
    assert second["next_after"] is None
    assert dashboard.get(f"/api/lists/{list_id}").json()["recipients"] == 31
    # Wildcards are taken literally.
    none = dashboard.get(f"/api/lists/{list_id}/recipients", params={"q": "%"}).json()
    assert none["recipients"] == []


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/lists/999", 404),
        ("/api/lists/0", 422),
        ("/api/lists/99999999999999999999", 422),
        ("/api/lists/abc/recipients", 422),
        ("/api/lists/1/recipients?limit=0", 422),
        ("/api/imports/12345", 404),
        ("/api/imports/12345/rejected.csv", 404),
    ],
)
def test_list_lookups_of_things_that_do_not_exist(
    dashboard: Dashboard, url: str, status: int
) -> None:
    answer = dashboard.get(url)
    assert answer.status_code == status
    assert answer.json()["detail"]


def test_text_a_database_cannot_store_is_refused(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    answer = dashboard.get("/api/lists/1/recipients", params={"q": "a\x00b"})
    assert answer.status_code == 422
    assert "NUL" in answer.json()["detail"]


# --- Campaigns -----------------------------------------------------------------------------


def test_a_campaign_is_created_scheduled_paused_resumed_and_cancelled(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    created = _campaign(dashboard, tracking=False)
    campaign_id = created["campaign"]["id"]
    assert created["campaign"]["state"] == "draft"
    assert created["campaign"]["tracking"] is False
    assert created["progress"] == {"total": 0, "done": 0, "pending": 0, "percent": 0.0}
    assert [c["id"] for c in dashboard.get("/api/campaigns").json()] == [campaign_id]

    scheduled = dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"})
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["jobs"] == 3
    assert scheduled.json()["state"] == "scheduled"

    again = dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"})
    assert again.status_code == 409
    assert "only a draft is scheduled" in again.json()["detail"]

    detail = dashboard.get(f"/api/campaigns/{campaign_id}").json()
    assert detail["counts"]["queued"] == 3
    assert detail["progress"]["pending"] == 3

    assert dashboard.post(f"/api/campaigns/{campaign_id}/pause").json()["state"] == "paused"
    assert dashboard.post(f"/api/campaigns/{campaign_id}/pause").status_code == 409
    assert dashboard.post(f"/api/campaigns/{campaign_id}/resume").json()["state"] in (
        "scheduled",
        "running",
    )
    assert dashboard.post(f"/api/campaigns/{campaign_id}/cancel").json()["state"] == "cancelled"
    final = dashboard.get(f"/api/campaigns/{campaign_id}").json()
    assert final["counts"]["cancelled"] == 3
    assert final["progress"]["percent"] == 100.0
    retry = dashboard.post(f"/api/campaigns/{campaign_id}/retry", json={})
    assert retry.status_code == 409
    assert "cannot retry" in retry.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"list": "nobody"}, 404, "list 'nobody' not found"),
        ({"template": "missing"}, 404, "template 'missing'"),
        ({"template": "../etc"}, 400, "template name"),
        ({"from_address": "not an address"}, 400, "from address"),
        ({"name": ""}, 422, "name: String should have at least 1 character"),
        ({"tracking": "sometimes"}, 422, "tracking"),
        ({"subject": "{{ broken"}, 400, "subject.txt:1"),
    ],
)
def test_bad_campaigns_are_refused_with_a_reason(
    dashboard: Dashboard, body: dict, status: int, reason: str
) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    answer = dashboard.post(
        "/api/campaigns",
        json={
            "name": "x",
            "list": "people",
            "template": "newsletter",
            "from_address": "news@example.com",
            **body,
        },
    )
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]


TWO_RELAYS = {
    "relays": [
        {"name": "primary", "url": "smtp://127.0.0.1:2525"},
        {"name": "backup", "url": "smtp://127.0.0.1:2526"},
    ]
}


def test_a_campaign_keeps_the_relays_chosen_for_it_and_unknown_relays_are_refused(
    database: Database, tmp_path: Path
) -> None:
    settings = dashboard_settings(tmp_path, extra=TWO_RELAYS)
    with running_dashboard(database, settings) as dashboard:
        dashboard.import_csv(SAMPLE_CSV, "people")
        chosen = _campaign(dashboard, relays=["backup"])["campaign"]
        assert chosen["relays"] == ["backup"]
        assert dashboard.get(f"/api/campaigns/{chosen['id']}").json()["campaign"]["relays"] == [
            "backup"
        ]
        assert _campaign(dashboard)["campaign"]["relays"] is None

        unknown = dashboard.post(
            "/api/campaigns",
            json={
                "name": "x",
                "list": "people",
                "template": "newsletter",
                "from_address": "news@example.com",
                "relays": ["backup", "nope"],
            },
        )
        assert unknown.status_code == 400, unknown.text
        assert unknown.json()["detail"] == (
            "relay 'nope' is not configured (relays: backup, primary)"
        )
        assert len(dashboard.get("/api/campaigns").json()) == 2


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"when": "at"}, 400, "at: a date and time is required"),
        ({"when": "at", "at": "tomorrow"}, 400, "is not a date and time"),
        ({"when": "at", "at": "2030-01-01T09:00", "timezone": "Mars/Olympus"}, 400, "Mars"),
        ({"when": "at", "at": "0001-01-01T00:00"}, 400, "out of range"),
        ({"when": "local_time", "at": "2030-01-01T09:00+02:00"}, 400, "without an offset"),
        ({"when": "soon"}, 422, "when"),
        ({"when": "now", "spread_hours": -1}, 422, "spread_hours"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(
    dashboard: Dashboard, body: dict, status: int, reason: str
) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _campaign(dashboard)["campaign"]["id"]
    answer = dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json=body)
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]
    assert dashboard.get(f"/api/campaigns/{campaign_id}").json()["campaign"]["state"] == "draft"


def test_a_template_variable_some_recipients_lack_stops_scheduling(dashboard: Dashboard) -> None:
    dashboard.import_csv("email,first_name\nann@example.com,Ann\n", "thin")
    campaign_id = _campaign(dashboard, "thin")["campaign"]["id"]
    answer = dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"})
    assert answer.status_code == 400
    assert "but 1 of 1 recipients lack it" in answer.json()["detail"]


def test_scheduling_at_a_time_in_a_zone_and_in_each_recipients_local_time(
    dashboard: Dashboard,
) -> None:
    dashboard.import_csv(
        "email,first_name,city,plan,timezone\n"
        "ann@example.com,Ann,Lisbon,pro,Europe/Lisbon\n"
        "bob@example.com,Bob,Tokyo,free,Asia/Tokyo\n"
        "cy@example.com,Cy,Nowhere,free,\n",
        "zoned",
    )
    at = _campaign(dashboard, "zoned")["campaign"]["id"]
    answer = dashboard.post(
        f"/api/campaigns/{at}/schedule",
        json={"when": "at", "at": "2031-03-01T09:00", "timezone": "Europe/Berlin"},
    ).json()
    assert answer["first_due"].startswith("2031-03-01T08:00:00")

    local = _campaign(dashboard, "zoned", name="local")["campaign"]["id"]
    answer = dashboard.post(
        f"/api/campaigns/{local}/schedule",
        json={"when": "local_time", "at": "2031-03-01T09:00", "timezone": "UTC"},
    ).json()
    assert answer["first_due"].startswith("2031-03-01T00:00:00")  # Tokyo first
    assert answer["last_due"].startswith("2031-03-01T09:00:00")
    assert answer["recipients_without_zone"] == 1


def test_recipients_of_a_campaign_their_history_failures_and_export(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _campaign(dashboard)["campaign"]["id"]
    dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"})
    with dashboard.database.session() as session:
        jobs = session.query(Job).filter(Job.campaign_id == campaign_id).order_by(Job.id).all()
        jobs[0].state = JobState.BOUNCED
        jobs[0].last_code = 550
        jobs[0].last_status = "5.1.1"
        jobs[0].last_reply = "550 5.1.1 =no such user"
        first_job = jobs[0].id

    found = dashboard.get(f"/api/campaigns/{campaign_id}/recipients", params={"q": "ann"}).json()
    assert [job["email"] for job in found["jobs"]] == ["ann@example.com"]
    assert found["jobs"][0]["state"] == "bounced"
    assert found["jobs"][0]["reply_class"] == "hard_bounce"
    bounced = dashboard.get(
        f"/api/campaigns/{campaign_id}/recipients", params={"state": "bounced"}
    ).json()
    assert len(bounced["jobs"]) == 1
    bad_state = dashboard.get(f"/api/campaigns/{campaign_id}/recipients", params={"state": "x"})
    assert bad_state.status_code == 422

    history = dashboard.get(f"/api/campaigns/{campaign_id}/recipients/{first_job}").json()
    assert history["job"]["email"] == "ann@example.com"
    assert history["events"] == []
    missing = dashboard.get(f"/api/campaigns/{campaign_id}/recipients/999999")
    assert missing.status_code == 404

    reasons = dashboard.get(f"/api/campaigns/{campaign_id}/bounce-reasons").json()
    assert reasons == [
        {
            "state": "bounced",
            "reply_class": "hard_bounce",
            "last_code": 550,
            "last_status": "5.1.1",
            "count": 1,
            "example_reply": "550 5.1.1 =no such user",
        }
    ]
    series = dashboard.get(f"/api/campaigns/{campaign_id}/series").json()
    assert series == {"sends_per_minute": [], "events_per_hour": {"opened": [], "clicked": []}}

    export = dashboard.get(f"/api/campaigns/{campaign_id}/export.csv")
    assert export.status_code == 200
    assert f"campaign-{campaign_id}.csv" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 3
    ann = next(row for row in rows if row["email"] == "ann@example.com")
    assert ann["state"] == "bounced"
    assert ann["last_reply"] == "550 5.1.1 =no such user"  # starts with 5: no formula risk


@pytest.mark.parametrize(
    "url",
    [
        "/api/campaigns/77",
        "/api/campaigns/77/recipients",
        "/api/campaigns/77/recipients/1",
        "/api/campaigns/77/bounce-reasons",
        "/api/campaigns/77/series",
        "/api/campaigns/77/export.csv",
    ],
)
def test_campaign_reads_of_a_missing_campaign_answer_404(dashboard: Dashboard, url: str) -> None:
    answer = dashboard.get(url)
    assert answer.status_code == 404
    assert (
        "campaign 77 not found" in answer.json()["detail"] or "not found" in answer.json()["detail"]
    )


@pytest.mark.parametrize("action", ["schedule", "pause", "resume", "cancel", "retry"])
def test_campaign_actions_on_a_missing_campaign_answer_404(
    dashboard: Dashboard, action: str
) -> None:
    answer = dashboard.post(f"/api/campaigns/77/{action}", json={"when": "now"})
    assert answer.status_code == 404
    assert "campaign 77 not found" in answer.json()["detail"]


# --- Templates -----------------------------------------------------------------------------


def test_templates_are_listed_read_and_saved_only_when_they_compile(dashboard: Dashboard) -> None:
    names = [t["name"] for t in dashboard.get("/api/templates").json()]
    assert names == ["announcement", "newsletter"]
    newsletter = dashboard.get("/api/templates/newsletter").json()
    assert "{{ first_name }}" in newsletter["html"]

    broken = dashboard.put(
        "/api/templates/newsletter",
        json={"subject": "Hi", "html": "<p>{% if x %}</p>", "text": None},
    )
    assert broken.status_code == 400
    assert "newsletter/body.html:1" in broken.json()["detail"]
    unchanged = dashboard.get("/api/templates/newsletter").json()
    assert unchanged["html"] == newsletter["html"]

    saved = dashboard.put(
        "/api/templates/welcome",
        json={"subject": "Welcome {{ first_name }}", "html": "<p>Hi {{ first_name }}</p>"},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["text"] is None
    assert (dashboard.settings.resolved_templates_dir / "welcome" / "body.html").read_text() == (
        "<p>Hi {{ first_name }}</p>"
    )
    assert "welcome" in [t["name"] for t in dashboard.get("/api/templates").json()]
    assert dashboard.get("/api/templates/nothing").status_code == 404
    assert dashboard.get("/api/templates/..%2F..%2Fetc").status_code in (404, 422)


def test_a_template_preview_renders_for_a_chosen_recipient(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    list_id = dashboard.get("/api/lists").json()[0]["id"]
    bob = dashboard.get(f"/api/lists/{list_id}/recipients", params={"q": "bob"}).json()
    bob_id = bob["recipients"][0]["id"]
    preview = dashboard.post(
        "/api/templates/preview",
        json={"template": "newsletter", "list_id": list_id, "recipient_id": bob_id},
    ).json()
    assert preview["email"] == "bob@example.com"
    assert preview["subject"] == "Bob, your monthly update from Northwind"
    assert "Oslo" in preview["html"] and "Oslo" in preview["text"]

    unsaved = dashboard.post(
        "/api/templates/preview",
        json={
            "source": {"subject": "Yo {{ city }}", "html": "<b>{{ first_name }}</b>"},
            "list_id": list_id,
        },
    ).json()
    assert unsaved["subject"] == "Yo Porto"  # the later row of ann@ updated her city
    assert "<b>Ann</b>" in unsaved["html"]

    lacking = dashboard.post(
        "/api/templates/preview",
        json={"source": {"subject": "s", "html": "{{ shoe_size }}"}, "list_id": list_id},
    )
    assert lacking.status_code == 400
    assert "'shoe_size' is undefined" in lacking.json()["detail"]
    nobody = dashboard.post("/api/templates/preview", json={"template": "newsletter"})
    assert nobody.status_code == 400
    assert "choose who to preview" in nobody.json()["detail"]
    elsewhere = dashboard.post(
        "/api/templates/preview",
        json={"template": "newsletter", "list_id": list_id + 1, "recipient_id": bob_id},
    )
    assert elsewhere.status_code == 400


def test_the_variable_check_counts_recipients_lacking_each_variable(dashboard: Dashboard) -> None:
    dashboard.import_csv(
        "email,first_name,city,plan\na@example.com,A,X,pro\nb@example.com,B,,free\n", "one"
    )
    dashboard.import_csv("email,first_name\nc@example.com,C\nd@example.com,D\n", "two")
    lists = {item["name"]: item["id"] for item in dashboard.get("/api/lists").json()}
    ok = dashboard.post(
        "/api/templates/check", json={"template": "newsletter", "list_id": lists["one"]}
    ).json()
    assert ok == {"list_id": lists["one"], "recipients": 2, "ok": True, "missing": {}}
    lacking = dashboard.post(
        "/api/templates/check", json={"template": "newsletter", "list_id": lists["two"]}
    ).json()
    assert lacking["ok"] is False
    assert lacking["missing"] == {"city": 2, "plan": 2}
    assert (
        dashboard.post("/api/templates/check", json={"template": "newsletter"}).status_code == 422
    )


def test_the_json_api_works_with_a_browser_session_too(database: Database, tmp_path: Path) -> None:
    app = create_app(
        dashboard_settings(tmp_path), database=database, password_hasher=FAST_PASSWORD_HASHER
    )
    create_user(database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN, hasher=FAST_PASSWORD_HASHER)
    with TestClient(app) as client:
        csrf = sign_in(client)
        # Checked with the app's own hasher: a hash of the same cost is kept as it is.
        assert "$m=8,t=1,p=1$" in _stored_password_hash(database)
        answer = client.put(
            "/api/templates/hello",
            json={"subject": "Hi", "html": "<p>Hi</p>"},
            headers={"X-CSRF-Token": csrf},
        )
        assert answer.status_code == 200, answer.text


def _stored_password_hash(database: Database) -> str:
    with database.session() as session:
        return session.scalars(select(DashboardUser.password_hash)).one()


def test_signing_in_moves_a_password_hash_of_another_cost_to_the_apps_own(
    database: Database, tmp_path: Path
) -> None:
    create_user(database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN, hasher=FAST_PASSWORD_HASHER)
    assert "$m=8,t=1,p=1$" in _stored_password_hash(database)
    # Not the production cost, which would spend a second here: any other cost shows the move.
    apps_own = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    settings = dashboard_settings(tmp_path)
    with TestClient(create_app(settings, database=database, password_hasher=apps_own)) as client:
        sign_in(client)
    stored = _stored_password_hash(database)
    assert "$m=16,t=2,p=1$" in stored
    assert apps_own.verify(stored, ADMIN_PASSWORD)
