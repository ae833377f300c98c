"""Erasing a person: nothing of the address is left in any table or file, the campaigns keep
their numbers, and neither a later import nor a campaign brings the address back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import JSON, LargeBinary, String, Text, select

from campaigns.core.events import record_event
from campaigns.core.models import (
    AuditEntry,
    Base,
    CampaignCounter,
    EventKind,
    ImportTask,
    Job,
    JobState,
    Recipient,
    Suppression,
    utc_now,
)
from campaigns.core.storage import Database
from campaigns.jobs.state_counts import fold_job_state_deltas, job_state_counts
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from tests.conftest import run_edm
from tests.delivery_helpers import deliver, delivery_context, publish_due_jobs
from tests.smtp_server import RecordingSmtpServer

ERASED = "ana.erased@example.com"
FORMS = (ERASED, quote(ERASED, safe=""), "ana.erased%40example.com")


def _edm(env: dict[str, str], *args: str) -> str:
    result = run_edm(list(args), env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _campaign(database: Database, folder: Path, list_name: str, name: str) -> int:
    template = folder / f"template-{name}"
    template.mkdir()
    (template / "subject.txt").write_text("Hello {{ first_name }}")
    (template / "body.html").write_text(
        '<p>Hi {{ first_name }}</p><a href="https://shop.example/?who={{ email }}">shop</a>'
    )
    campaign = create_campaign(
        database,
        name=name,
        list_name=list_name,
        template=str(template),
        from_address="news@example.com",
        templates_dir=folder,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    return campaign.id


def _numbers(database: Database, campaign_id: int) -> tuple[dict[str, int], dict[str, int]]:
    fold_job_state_deltas(database)
    with database.session() as session:
        counters = dict(
            session.execute(
                select(CampaignCounter.name, CampaignCounter.value).where(
                    CampaignCounter.campaign_id == campaign_id
                )
            ).all()
        )
        return counters, job_state_counts(session, campaign_id)


def _texts_naming_the_address(database: Database) -> list[str]:
    """Every text, JSON and binary column of every table, searched for the address."""
    found = []
    with database.session() as session:
        for table in Base.metadata.sorted_tables:
            columns = [
                column
                for column in table.columns
                if isinstance(column.type, String | Text | JSON | LargeBinary)
            ]
            for row in session.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    shown = _as_text(value).lower()
                    if any(form.lower() in shown for form in FORMS):
                        found.append(f"{table.name}.{column.name}: {shown[:120]}")
    return found


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _files_naming_the_address(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                content = path.read_bytes().lower()
                if any(form.lower().encode() in content for form in FORMS):
                    found.append(str(path))
    return found


def test_erase_leaves_nothing_keeps_counts_and_keeps_the_address_out(
    edm_env: dict[str, str], database: Database, redis_url: str, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(f"email,first_name\n{ERASED},Ana\nbo@example.com,Bo\n")
    vip = tmp_path / "vip.csv"
    vip.write_text(f"Email,first_name,tier\n{ERASED.upper()},Ana,gold\n")
    _edm(edm_env, "lists", "import", str(people), "--list", "people")
    _edm(edm_env, "lists", "import", str(vip), "--list", "vip")

    sent_campaign = _campaign(database, tmp_path, "people", "sent")
    with RecordingSmtpServer() as server:
        deliver(delivery_context(database, server, redis_url), publish_due_jobs(database))
        assert sorted(r for m in server.messages for r in m.rcpt_tos) == [
            ERASED,
            "bo@example.com",
        ]
    with database.session() as session:
        job = session.scalar(
            select(Job)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(Recipient.email_key == ERASED, Job.campaign_id == sent_campaign)
        )
        assert job is not None
        # A relay reply and a bounce report that quote the address, as real ones do.
        job.last_reply = f"250 2.0.0 queued for <{ERASED}>"
        record_event(
            session,
            job_id=job.id,
            campaign_id=sent_campaign,
            kind=EventKind.BOUNCED,
            detail={"status": "4.2.2", "text": f"mailbox of {ERASED} is full"},
        )
        session.add(
            ImportTask(
                list_name="people",
                file_name="people.csv",
                state="done",
                report={"errors": [{"line": 3, "reason": f"row of {ERASED} too long"}]},
            )
        )
    waiting_campaign = _campaign(database, tmp_path, "vip", "waiting")
    uploads = Path(edm_env["EDM_DATA_DIR"]) / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "kept.csv").write_text(f"email\nkeep@example.com\n{ERASED}\n")
    before = _numbers(database, sent_campaign)

    exported = json.loads(_edm(edm_env, "recipients", "export", ERASED))
    assert exported["email"] == ERASED
    assert sorted(row["list"] for row in exported["lists"]) == ["people", "vip"]
    assert {m["campaign"] for m in exported["messages"]} == {"sent", "waiting"}
    sent = next(m for m in exported["messages"] if m["campaign"] == "sent")
    assert [event["kind"] for event in sent["events"]] == ["bounced"]
    assert ERASED in sent["last_reply"]
    assert exported["import_reports"][0]["line"] == 3
    assert _texts_naming_the_address(database) != []

    output = _edm(edm_env, "recipients", "erase", ERASED.title())
    assert "erased: 2 list rows" in output and ERASED not in output

    assert _texts_naming_the_address(database) == []
    data_folder = Path(edm_env["EDM_DATA_DIR"])
    sqlite_files = [p for p in tmp_path.glob("edm.sqlite3*")]
    assert _files_naming_the_address(data_folder, *sqlite_files) == []
    assert (uploads / "kept.csv").read_text() == "email\nkeep@example.com\n"
    assert _numbers(database, sent_campaign) == before
    with database.session() as session:
        keys = list(session.scalars(select(Suppression.email_key)))
        assert len(keys) == 1 and keys[0].startswith("erased:")
        waiting = session.scalar(select(Job.state).where(Job.campaign_id == waiting_campaign))
        assert waiting == JobState.SUPPRESSED
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [entry.action for entry in audit] == ["export", "erase"]
        assert audit[1].actor.startswith("cli:")

    again = tmp_path / "again.csv"
    again.write_text(f"email,first_name\n{ERASED.upper()},Ana\ncarl@example.com,Carl\n")
    assert "1 imported, 0 updated, 0 duplicates, 0 rejected, 1 suppressed" in _edm(
        edm_env, "lists", "import", str(again), "--list", "people"
    )
    later = _campaign(database, tmp_path, "people", "later")
    with RecordingSmtpServer() as server:
        deliver(delivery_context(database, server, redis_url), publish_due_jobs(database))
        received = sorted(r for m in server.messages for r in m.rcpt_tos)
    assert received == ["bo@example.com", "carl@example.com"]
    assert {state: n for state, n in _numbers(database, later)[1].items() if n} == {"sent": 2}
    assert _texts_naming_the_address(database) == []

    html = tmp_path / "one.html"
    html.write_text("<p>Your code</p>")
    one_to_one = run_edm(
        [
            "send",
            "--to",
            ERASED,
            "--subject",
            "Code",
            "--html-file",
            str(html),
            "--from",
            "news@example.com",
        ],
        edm_env,
    )
    assert one_to_one.returncode != 0
    assert one_to_one.stderr.strip().endswith("is suppressed (erased)")

    for args in (["recipients", "erase", ERASED], ["recipients", "show", "nobody@example.com"]):
        result = run_edm(args, edm_env)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("edm: error: email: no one with the address")
