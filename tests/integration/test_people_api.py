"""People and the suppression list through the JSON API on real SQLite and PostgreSQL: a viewer
reads, an editor changes, bad input is a 4xx naming the field, and an erase through the API
leaves only the keyed hash."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.core.models import AuditEntry, Recipient, Suppression
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.bearer_tokens import create_api_token
from dashboard.roles import Role
from tests.dashboard_helpers import (
    FAST_PASSWORD_HASHER,
    SAMPLE_CSV,
    Dashboard,
    dashboard_settings,
    running_dashboard,
)


@pytest.fixture
def dashboard(database: Database, tmp_path: Path) -> Iterator[Dashboard]:
    settings = dashboard_settings(tmp_path, blocked_domains="example.org")
    with running_dashboard(database, settings) as running:
        assert running.import_csv(SAMPLE_CSV, "people")["state"] == "done"
        yield running


def _viewer(database: Database) -> dict[str, str]:
    create_user(
        database,
        "viewer@example.com",
        "a long enough password",
        role=Role.VIEWER,
        hasher=FAST_PASSWORD_HASHER,
    )
    return {"Authorization": f"Bearer {create_api_token(database, 'viewer@example.com')}"}


def test_a_person_is_shown_corrected_and_removed(dashboard: Dashboard) -> None:
    person = dashboard.get("/api/recipients", params={"email": "ANN@example.com"})
    assert person.status_code == 200, person.text
    [membership] = person.json()["lists"]
    assert membership["fields"]["city"] == "Porto"  # the later row of the file won

    changed = dashboard.put(
        "/api/recipients/fields",
        json={
            "email": "ann@example.com",
            "list": "people",
            "fields": {"City": "Faro", "Tier": "1"},
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["city"] == "Faro" and changed.json()["tier"] == "1"
    lists = dashboard.get("/api/lists").json()
    assert "tier" in lists[0]["field_names"]

    exported = dashboard.get(f"/api/lists/{lists[0]['id']}/export.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["email"] for row in rows] == ["ann@example.com", "bob@example.com"]
    assert rows[0]["city"] == "Faro"

    removed = dashboard.post(
        "/api/recipients/remove", json={"email": "ann@example.com", "list": "people"}
    )
    assert removed.status_code == 200, removed.text
    assert dashboard.get("/api/recipients", params={"email": "ann@example.com"}).status_code == 404


def test_the_blocked_domain_is_refused_at_import(dashboard: Dashboard) -> None:
    report = dashboard.get("/api/imports").json()[0]
    assert report["counts"]["rejected"] == 2
    rejected = dashboard.get(f"/api/imports/{report['id']}").json()["rejected_rows"]
    assert {
        "line": 6,
        "reason": "the domain example.org is blocked (EDM_BLOCKED_DOMAINS)",
    } in rejected


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "field"),
    [
        ("get", "/api/recipients?email=nobody@example.com", None, 404, "email:"),
        ("get", "/api/recipients?email=not-an-address", None, 400, "email:"),
        (
            "put",
            "/api/recipients/fields",
            {"email": "bob@example.com", "list": "nope", "fields": {"a": "b"}},
            404,
            "list:",
        ),
        (
            "put",
            "/api/recipients/fields",
            {"email": "bob@example.com", "list": "people", "fields": {"email": "x@y.z"}},
            400,
            "field:",
        ),
        ("post", "/api/recipients/erase", {"email": "nobody@example.com"}, 404, "email:"),
        (
            "post",
            "/api/suppression",
            {"addresses": ["a@example.com"], "reason": "erased"},
            400,
            "reason:",
        ),
        ("post", "/api/suppression/remove", {"email": "nobody@example.com"}, 404, "nobody"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    dashboard: Dashboard, method: str, url: str, body: dict | None, status: int, field: str
) -> None:
    answer = getattr(dashboard, method)(url, **({"json": body} if body is not None else {}))
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"].startswith(field) or field in answer.json()["detail"]


def test_a_viewer_reads_people_and_suppressions_but_changes_nothing(dashboard: Dashboard) -> None:
    viewer = _viewer(dashboard.database)
    client = dashboard.client
    assert (
        client.get(
            "/api/recipients", params={"email": "bob@example.com"}, headers=viewer
        ).status_code
        == 200
    )
    assert client.get("/api/suppression", headers=viewer).status_code == 200
    for url, body in (
        ("/api/recipients/erase", {"email": "bob@example.com"}),
        ("/api/recipients/remove", {"email": "bob@example.com", "list": "people"}),
        ("/api/suppression", {"addresses": ["bob@example.com"]}),
    ):
        assert client.post(url, json=body, headers=viewer).status_code == 403
    assert dashboard.get("/api/recipients", params={"email": "bob@example.com"}).status_code == 200


def test_suppression_is_searched_added_imported_exported_and_removed(dashboard: Dashboard) -> None:
    added = dashboard.post(
        "/api/suppression",
        json={"addresses": ["Zed@Example.com", "zoe@example.com"], "detail": "asked"},
    )
    assert added.json() == {"added": 2}
    imported = dashboard.post(
        "/api/suppression/import",
        files={"file": ("list.csv", b"email,reason\nyan@example.com,complaint\nbad\n", "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["added"] == 1 and imported.json()["errors"][0]["line"] == 3
    page = dashboard.get("/api/suppression", params={"q": "z", "limit": 1}).json()
    assert [entry["email"] for entry in page["entries"]] == ["zed@example.com"]
    assert page["next_after"] == "zed@example.com"
    exported = dashboard.get("/api/suppression/export.csv").text
    assert [row["email"] for row in csv.DictReader(io.StringIO(exported))] == [
        "yan@example.com",
        "zed@example.com",
        "zoe@example.com",
    ]
    assert (
        dashboard.post("/api/suppression/remove", json={"email": "ZOE@example.com"}).status_code
        == 200
    )
    assert [
        e["email"] for e in dashboard.get("/api/suppression", params={"q": "z"}).json()["entries"]
    ] == ["zed@example.com"]
    assert not list((dashboard.settings.data_dir / "uploads").glob("suppression-*"))


def test_an_erase_through_the_api_keeps_only_the_hash_and_logs_who(dashboard: Dashboard) -> None:
    export = dashboard.get("/api/recipients/export", params={"email": "bob@example.com"})
    assert export.json()["lists"][0]["fields"]["city"] == "Oslo"
    erased = dashboard.post("/api/recipients/erase", json={"email": "Bob@example.com"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["list_rows"] == 1
    with dashboard.database.session() as session:
        assert list(session.scalars(select(Recipient.email))) == ["ann@example.com"]
        [key] = session.scalars(select(Suppression.email_key))
        assert key.startswith("erased:")
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.action, e.actor) for e in entries] == [
            ("export", "user:1 admin@example.com"),
            ("erase", "user:1 admin@example.com"),
        ]
        assert all("bob" not in str(e.detail) for e in entries)
    again = dashboard.import_csv("email,first_name\nbob@example.com,Bob\n", "people")
    assert again["counts"]["suppressed"] == 1
