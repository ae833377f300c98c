"""Housekeeping after the first send, through the JSON API on real SQLite and PostgreSQL: edit,
clone, archive and delete campaigns; rename and delete lists and templates; what would do
nothing refused. Each test checks what remains in the database, not only the answer."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaigns.core.models import (
    Campaign,
    CampaignCounter,
    CampaignState,
    Job,
    JobState,
    Recipient,
    RecipientList,
    utc_now,
)
from campaigns.core.storage import Database
from campaigns.lists.suppression import SuppressionReason, add_suppressions
from dashboard.accounts import create_user
from dashboard.roles import Role
from tests.dashboard_helpers import (
    FAST_PASSWORD_HASHER,
    SAMPLE_CSV,
    Dashboard,
    dashboard_settings,
    running_dashboard,
    sign_in,
)
from tests.factories import campaign_with_jobs, set_jobs


@pytest.fixture
def dashboard(database: Database, tmp_path: Path) -> Iterator[Dashboard]:
    with running_dashboard(database, dashboard_settings(tmp_path)) as running:
        yield running


def _create(dashboard: Dashboard, name: str = "Spring", template: str = "newsletter") -> int:
    answer = dashboard.post(
        "/api/campaigns",
        json={
            "name": name,
            "list": "people",
            "template": template,
            "from_address": "news@example.com",
        },
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["campaign"]["id"])


def _count(database: Database, query: object) -> int:
    with database.session() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def _campaign(database: Database, campaign_id: int) -> Campaign | None:
    with database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None:
            session.expunge(campaign)
        return campaign


def _sent_campaign(database: Database) -> int:
    """A completed campaign whose relay took two messages and refused one, with an open."""
    campaign_id, job_ids = campaign_with_jobs(database, 3, state=CampaignState.COMPLETED)
    set_jobs(
        database,
        {
            job_ids[0]: {"state": JobState.SENT, "last_code": 250},
            job_ids[1]: {"state": JobState.SENT, "last_code": 250},
            job_ids[2]: {"state": JobState.BOUNCED, "last_code": 550, "last_status": "5.1.1"},
        },
    )
    with database.session() as session:
        session.add(CampaignCounter(campaign_id=campaign_id, name="unique_opens", value=1))
    return campaign_id


def test_a_draft_is_edited_then_cloned_and_deleted(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    dashboard.import_csv("email,first_name\nzed@example.com,Zed\n", "others")
    campaign_id = _create(dashboard)

    edited = dashboard.client.patch(
        f"/api/campaigns/{campaign_id}",
        headers=dashboard.bearer,
        json={
            "name": "Spring, fixed",
            "list": "others",
            "template": "announcement",
            "from_address": "Shop <shop@example.com>",
            "tracking": False,
        },
    )

    assert edited.status_code == 200, edited.text
    stored = _campaign(dashboard.database, campaign_id)
    assert stored is not None
    assert (stored.name, stored.template_name, stored.from_address, stored.tracking) == (
        "Spring, fixed",
        "announcement",
        "Shop <shop@example.com>",
        False,
    )
    assert edited.json()["campaign"]["list_name"] == "others"
    plain = (dashboard.settings.resolved_templates_dir / "announcement" / "subject.txt").read_text()
    assert stored.subject_template == plain.strip()

    cloned = dashboard.post(f"/api/campaigns/{campaign_id}/clone")
    assert cloned.status_code == 201, cloned.text
    clone = _campaign(dashboard.database, cloned.json()["campaign"]["id"])
    assert clone is not None
    assert (clone.name, clone.state, clone.html_template) == (
        "Spring, fixed (copy)",
        CampaignState.DRAFT,
        stored.html_template,
    )

    assert dashboard.delete(f"/api/campaigns/{campaign_id}").status_code == 204
    assert _campaign(dashboard.database, campaign_id) is None
    assert _campaign(dashboard.database, clone.id) is not None


def test_a_bad_edit_names_the_field_and_changes_nothing(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _create(dashboard)

    answer = dashboard.client.patch(
        f"/api/campaigns/{campaign_id}",
        headers=dashboard.bearer,
        json={"name": "Renamed", "subject": "{{ broken"},
    )

    assert answer.status_code == 400
    assert "subject" in answer.json()["detail"] or "template" in answer.json()["detail"]
    stored = _campaign(dashboard.database, campaign_id)
    assert stored is not None and stored.name == "Spring"


def test_a_campaign_that_has_sent_is_archived_not_deleted(dashboard: Dashboard) -> None:
    campaign_id = _sent_campaign(dashboard.database)

    refused = dashboard.delete(f"/api/campaigns/{campaign_id}")
    assert refused.status_code == 409
    assert "archive it instead" in refused.json()["detail"]

    archived = dashboard.post(f"/api/campaigns/{campaign_id}/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived_at"] is not None
    listed = [row["id"] for row in dashboard.get("/api/campaigns").json()]
    assert campaign_id not in listed
    in_archive = [row["id"] for row in dashboard.get("/api/campaigns?archived=true").json()]
    assert in_archive == [campaign_id]
    # History and counters stay.
    assert _count(dashboard.database, select(func.count()).where(Job.campaign_id == campaign_id))
    assert dashboard.get(f"/api/campaigns/{campaign_id}").json()["counters"]["unique_opens"] == 1
    rates = dashboard.get(f"/api/campaigns/rates?ids={campaign_id}").json()[str(campaign_id)]
    assert (rates["sent"], rates["delivered"], rates["opened"]) == (3, 2, 1)
    assert (rates["delivered_rate"], rates["open_rate"]) == (66.7, 50.0)

    back = dashboard.post(f"/api/campaigns/{campaign_id}/archive", json={"archived": False})
    assert back.json()["archived_at"] is None


def test_a_running_campaign_is_neither_archived_nor_edited(dashboard: Dashboard) -> None:
    campaign_id, _jobs = campaign_with_jobs(dashboard.database, 2, state=CampaignState.RUNNING)

    archive = dashboard.post(f"/api/campaigns/{campaign_id}/archive")
    edit = dashboard.client.patch(
        f"/api/campaigns/{campaign_id}", headers=dashboard.bearer, json={"name": "x"}
    )

    assert archive.status_code == 409 and "cancel it or let it finish" in archive.json()["detail"]
    assert edit.status_code == 409 and "only a draft is edited" in edit.json()["detail"]
    stored = _campaign(dashboard.database, campaign_id)
    assert stored is not None and stored.archived_at is None and stored.name == "c"


def test_a_list_goes_with_its_people_and_drafts_unless_a_campaign_sent_to_it(
    dashboard: Dashboard,
) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    draft_id = _create(dashboard)
    list_id = dashboard.get("/api/lists").json()[0]["id"]

    plan = dashboard.get(f"/api/lists/{list_id}/removal").json()
    assert plan["summary"] == (
        "list 'people' goes with its 3 people and 1 draft campaigns made on it"
    )

    renamed = dashboard.client.patch(
        f"/api/lists/{list_id}", headers=dashboard.bearer, json={"name": "customers"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "customers"
    deleted = dashboard.delete(f"/api/lists/{list_id}")
    assert deleted.status_code == 200, deleted.text
    assert _count(dashboard.database, select(func.count()).select_from(Recipient)) == 0
    assert _count(dashboard.database, select(func.count()).select_from(RecipientList)) == 0
    assert _campaign(dashboard.database, draft_id) is None

    sent_id = _sent_campaign(dashboard.database)
    sent = _campaign(dashboard.database, sent_id)
    assert sent is not None
    refused = dashboard.delete(f"/api/lists/{sent.list_id}")
    assert refused.status_code == 409
    assert f"campaign {sent_id} 'c' (completed) sent to it" in refused.json()["detail"]
    assert _count(dashboard.database, select(func.count()).select_from(Recipient)) == 3


def test_a_template_is_renamed_and_deleted_but_not_while_a_campaign_sends_with_it(
    dashboard: Dashboard,
) -> None:
    folder = dashboard.settings.resolved_templates_dir
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _create(dashboard, template="announcement")
    scheduled = dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"})
    assert scheduled.status_code == 200, scheduled.text

    refused = dashboard.delete("/api/templates/announcement")
    assert refused.status_code == 409
    assert f"campaign {campaign_id} is scheduled" in refused.json()["detail"]
    assert (folder / "announcement").is_dir()

    dashboard.post(f"/api/campaigns/{campaign_id}/cancel")
    renamed = dashboard.post(
        "/api/templates/announcement/rename", json={"name": "announcement-old"}
    )
    assert renamed.status_code == 200, renamed.text
    assert not (folder / "announcement").exists() and (folder / "announcement-old").is_dir()
    assert dashboard.delete("/api/templates/announcement-old").status_code == 204
    assert not (folder / "announcement-old").exists()
    # The campaign keeps its own copy.
    stored = _campaign(dashboard.database, campaign_id)
    assert stored is not None and stored.html_template


def test_scheduling_to_nobody_is_refused_naming_the_list(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _create(dashboard)
    add_suppressions(
        dashboard.database,
        ["ann@example.com", "bob@example.com", "dee@example.org"],
        reason=SuppressionReason.MANUAL,
    )

    answer = dashboard.post(f"/api/campaigns/{campaign_id}/schedule", json={"when": "now"})

    assert answer.status_code == 400
    assert answer.json()["detail"] == (
        "list: 'people' has no one to send to (all 3 of its recipients are suppressed)"
    )
    stored = _campaign(dashboard.database, campaign_id)
    assert stored is not None and stored.state == CampaignState.DRAFT
    assert _count(dashboard.database, select(func.count()).select_from(Job)) == 0


def test_a_header_only_csv_is_an_import_error_and_makes_no_list(dashboard: Dashboard) -> None:
    state = dashboard.import_csv("email,first_name\n", "empty")

    assert state["state"] == "failed"
    assert "a header and no rows; nothing imported" in state["error"]
    assert dashboard.get("/api/lists").json() == []


def test_recipients_are_found_by_any_part_and_paged_both_ways(dashboard: Dashboard) -> None:
    people = "".join(f"person{i:02d}@shop{i % 2}.example\n" for i in range(7))
    dashboard.import_csv("email\n" + people, "people")
    list_id = dashboard.get("/api/lists").json()[0]["id"]
    url = f"/api/lists/{list_id}/recipients"

    first = dashboard.get(url, params={"q": "SHOP1", "limit": 2}).json()
    assert [r["email"] for r in first["recipients"]] == [
        "person01@shop1.example",
        "person03@shop1.example",
    ]
    assert (first["total"], first["first"], first["previous_before"]) == (3, 1, None)
    second = dashboard.get(url, params={"q": "shop1", "limit": 2, "after": first["next_after"]})
    assert [r["email"] for r in second.json()["recipients"]] == ["person05@shop1.example"]
    assert (second.json()["first"], second.json()["next_after"]) == (3, None)
    back = dashboard.get(
        url, params={"q": "shop1", "limit": 2, "before": second.json()["previous_before"]}
    ).json()
    assert back["recipients"] == first["recipients"] and back["first"] == 1


def test_the_pages_refuse_scheduling_to_nobody_and_show_rates_and_next_attempts(
    dashboard: Dashboard,
) -> None:
    csrf = sign_in(dashboard.client)
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _create(dashboard)
    add_suppressions(
        dashboard.database,
        ["ann@example.com", "bob@example.com", "dee@example.org"],
        reason=SuppressionReason.MANUAL,
    )

    refused = dashboard.client.post(
        f"/campaigns/{campaign_id}/schedule", data={"csrf_token": csrf, "when": "now"}
    )
    assert refused.status_code == 400
    assert "has no one to send to (all 3 of its recipients are suppressed)" in html.unescape(
        refused.text
    )

    sent_id, job_ids = campaign_with_jobs(dashboard.database, 2, state=CampaignState.RUNNING)
    later = utc_now() + timedelta(hours=2)
    set_jobs(
        dashboard.database,
        {
            job_ids[0]: {"state": JobState.SENT},
            job_ids[1]: {"state": JobState.DEFERRED, "next_attempt_at": later},
        },
    )
    listing = dashboard.client.get("/campaigns").text
    assert '<th class="num">Delivered</th>' in listing and "100.0%" in listing
    table = dashboard.client.get(f"/campaigns/{sent_id}/recipients").text
    assert "Next attempt" in table and later.strftime("%H:%M") in table
    assert "1\u20132 of 2" in table


def test_a_viewer_sees_no_housekeeping_and_may_do_none(dashboard: Dashboard) -> None:
    dashboard.import_csv(SAMPLE_CSV, "people")
    campaign_id = _create(dashboard)
    create_user(
        dashboard.database,
        "viewer@example.com",
        "a viewer's long password",
        role=Role.VIEWER,
        hasher=FAST_PASSWORD_HASHER,
    )
    csrf = sign_in(dashboard.client, "viewer@example.com", "a viewer's long password")

    page = dashboard.client.get(f"/campaigns/{campaign_id}").text
    assert "Edit draft" not in page and "Delete draft" not in page and "Clone" not in page
    refused = dashboard.client.post(f"/campaigns/{campaign_id}/delete", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert _campaign(dashboard.database, campaign_id) is not None
