"""People, lists, the domain blocklist and event retention through the ``edm`` command line, on
real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from campaigns.core.errors import NotFound
from campaigns.core.events import record_event
from campaigns.core.models import CampaignCounter, EventKind, Job, JobEvent, JobState, utc_now
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from tests.conftest import run_edm
from tests.delivery_helpers import deliver, delivery_context, publish_due_jobs
from tests.smtp_server import RecordingSmtpServer


def _edm(env: dict[str, str], *args: str) -> str:
    result = run_edm(list(args), env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _sent_campaign(database: Database, tmp_path: Path, redis_url: str, **overrides: object) -> int:
    template = tmp_path / "template"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ first_name }}")
    (template / "body.html").write_text("<p>Hello {{ first_name }}</p>")
    campaign = create_campaign(
        database,
        name="News",
        list_name="people",
        template=str(template),
        from_address="news@example.com",
        templates_dir=tmp_path,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    with RecordingSmtpServer() as server:
        deliver(
            delivery_context(database, server, redis_url, **overrides), publish_due_jobs(database)
        )
        assert all(len(message.rcpt_tos) == 1 for message in server.messages)
    return campaign.id


@pytest.fixture
def people(edm_env: dict[str, str], tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,first_name,city\nann@example.com,Ann,Lisbon\nbo@example.com,Bo,Oslo\n"
        "cy@blocked.example,Cy,Rome\n"
    )
    _edm(edm_env, "lists", "import", str(path), "--list", "people")
    return path


def test_a_person_is_shown_updated_and_removed_and_keeps_their_history(
    edm_env: dict[str, str], database: Database, redis_url: str, tmp_path: Path, people: Path
) -> None:
    _sent_campaign(database, tmp_path, redis_url)
    updated = _edm(
        edm_env,
        "recipients",
        "update",
        "ANN@example.com",
        "--list",
        "people",
        "--field",
        "City=Faro",
        "--field",
        "nickname=Annie",
    )
    assert updated.strip() == "ANN@example.com in 'people': 4 fields"
    shown = json.loads(_edm(edm_env, "recipients", "show", "ann@example.com", "--json"))
    assert shown["lists"][0]["fields"] == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "city": "Faro",
        "nickname": "Annie",
    }
    assert [m["state"] for m in shown["messages"]] == ["sent"]
    text = _edm(edm_env, "recipients", "show", "ann@example.com")
    assert "list 'people'" in text and "campaign" in text

    _edm(edm_env, "recipients", "remove", "ann@example.com", "--list", "people")
    after = json.loads(_edm(edm_env, "recipients", "show", "ann@example.com", "--json"))
    assert after["lists"][0]["list"].startswith("(removed from list")
    assert [m["state"] for m in after["messages"]] == ["sent"]

    with pytest.raises(NotFound, match="not found"):
        create_campaign(
            database,
            name="Hidden",
            list_name="(removed from list 1)",
            template=str(tmp_path / "template"),
            from_address="news@example.com",
            templates_dir=tmp_path,
        )

    lists = json.loads(_edm(edm_env, "lists", "list", "--json"))["lists"]
    assert [(entry["name"], entry["recipients"]) for entry in lists] == [("people", 2)]
    assert "2 recipients" in _edm(edm_env, "lists", "show", "people")
    out = tmp_path / "people-export.csv"
    _edm(edm_env, "lists", "export", "people", "--csv", str(out))
    with out.open(encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    assert [row["email"] for row in rows] == ["bo@example.com", "cy@blocked.example"]
    assert list(rows[0]) == ["email", "first_name", "city", "nickname"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["recipients", "update", "ann@example.com", "--list", "people", "--field", "city"],
            "field: 'city' is not NAME=VALUE",
        ),
        (
            ["recipients", "update", "ann@example.com", "--list", "nope", "--field", "a=b"],
            "list: no list named 'nope'",
        ),
        (
            [
                "recipients",
                "update",
                "ann@example.com",
                "--list",
                "people",
                "--field",
                "email=x@y.z",
            ],
            "field: email cannot be changed",
        ),
        (
            ["recipients", "remove", "zed@example.com", "--list", "people"],
            "email: 'zed@example.com' is not in the list 'people'",
        ),
        (["recipients", "show", "not an address"], "email: 'not an address' is not an email"),
        (["lists", "show", "(erased people)"], "list: no list named"),
        (["lists", "import", "PEOPLE", "--list", "(mine)"], "list: a list name may not start"),
        (["maintenance", "prune"], "EDM_EVENT_RETENTION_DAYS: set it"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    edm_env: dict[str, str], people: Path, args: list[str], message: str
) -> None:
    args = [str(people) if arg == "PEOPLE" else arg for arg in args]
    result = run_edm(args, edm_env)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"edm: error: {message}"), result.stderr


def test_a_blocked_domain_is_refused_at_import_and_at_send(
    edm_env: dict[str, str], database: Database, redis_url: str, tmp_path: Path, people: Path
) -> None:
    blocked_env = {**edm_env, "EDM_BLOCKED_DOMAINS": "blocked.example"}
    again = tmp_path / "again.csv"
    again.write_text("email,first_name,city\ndee@mail.blocked.example,Dee,Kyiv\n")
    output = _edm(blocked_env, "lists", "import", str(again), "--list", "people")
    assert "0 imported" in output and "the domain blocked.example is blocked" in output

    # cy@ was imported before the domain was blocked: the send refuses it.
    campaign_id = _sent_campaign(database, tmp_path, redis_url, blocked_domains="blocked.example")
    with database.session() as session:
        states = sorted(session.scalars(select(Job.state).where(Job.campaign_id == campaign_id)))
    assert states == [JobState.SENT, JobState.SENT, JobState.SUPPRESSED]


def test_prune_drops_old_events_and_replies_and_keeps_counters(
    edm_env: dict[str, str], database: Database, redis_url: str, tmp_path: Path, people: Path
) -> None:
    campaign_id = _sent_campaign(database, tmp_path, redis_url)
    long_ago = utc_now() - timedelta(days=100)
    with database.session() as session:
        job_ids = list(session.scalars(select(Job.id).where(Job.campaign_id == campaign_id)))
        for job_id, when in zip(job_ids, (long_ago, utc_now()), strict=False):
            record_event(
                session,
                job_id=job_id,
                campaign_id=campaign_id,
                kind=EventKind.OPENED,
                detail={"user_agent": "Mail"},
                occurred_at=when,
            )
        session.execute(update(Job).where(Job.id == job_ids[0]).values(updated_at=long_ago))

    def counters() -> dict[str, int]:
        with database.session() as session:
            return dict(
                session.execute(
                    select(CampaignCounter.name, CampaignCounter.value).where(
                        CampaignCounter.campaign_id == campaign_id
                    )
                ).all()
            )

    before = counters()
    report = json.loads(
        _edm({**edm_env, "EDM_EVENT_RETENTION_DAYS": "30"}, "maintenance", "prune", "--json")
    )
    assert (report["events"], report["replies"]) == (1, 1)
    assert counters() == before
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(JobEvent)) == 1
        assert session.scalar(select(Job.last_reply).where(Job.id == job_ids[0])) is None
        assert session.scalar(select(Job.last_reply).where(Job.id == job_ids[1])) is not None
