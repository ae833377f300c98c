"""The suppression list through the ``edm`` command line, and what it keeps from being sent."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.core.models import Job, JobState, Recipient, Suppression, utc_now
from campaigns.core.spreadsheet_csv import original_cell, safe_cell
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from tests.conftest import run_edm
from tests.delivery_helpers import deliver, delivery_context, publish_due_jobs
from tests.smtp_server import RecordingSmtpServer


def _edm(env: dict[str, str], *args: str) -> str:
    result = run_edm(list(args), env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _suppressed(database: Database) -> dict[str, tuple[str, str | None]]:
    with database.session() as session:
        rows = session.execute(
            select(Suppression.email_key, Suppression.reason, Suppression.detail)
        )
        return {key: (reason, detail) for key, reason, detail in rows}


def _export(env: dict[str, str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_edm(env, "suppression", "export"))))


def test_import_suppresses_valid_rows_and_reports_the_others_by_line(
    edm_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    _edm(edm_env, "suppression", "add", "old@example.com", "--reason", "unsubscribe")
    path = tmp_path / "bounces.csv"
    path.write_text(
        "Name,E-mail\n"
        "Ana,Ana@Example.com\n"
        "Bad,not-an-address\n"
        "Again,ana@example.com\n"
        "Old,OLD@example.com\n"
        "Empty,\n"
        "Bo,bo@example.org\n"
    )

    output = _edm(edm_env, "suppression", "import", str(path), "--reason", "hard_bounce")

    assert "2 added, 1 already suppressed, 1 duplicates, 2 rejected" in output
    assert f"{path}:3: 'not-an-address'" in output
    assert f"{path}:6: no email address" in output
    assert _suppressed(database) == {
        "ana@example.com": ("hard_bounce", None),
        "bo@example.org": ("hard_bounce", None),
        "old@example.com": ("unsubscribe", None),
    }


def test_an_unreadable_file_is_one_line_and_suppresses_nobody(
    edm_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(b"email\nfirst@example.com\nsecond@example.com\nJos\xe9@example.com\n")
    result = run_edm(["suppression", "import", str(path)], edm_env)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "broken.csv" in result.stderr and "line 4" in result.stderr
    assert _suppressed(database) == {}


def test_export_neutralises_cells_that_spreadsheets_would_run(
    edm_env: dict[str, str], tmp_path: Path
) -> None:
    _edm(
        edm_env,
        "suppression",
        "add",
        "--detail",
        '=HYPERLINK("https://evil.example","click")',
        "--",  # an address may start with "-"
        "=cmd@example.com",
        "-minus@example.com",
    )
    _edm(edm_env, "suppression", "add", "plain@example.com", "--reason", "complaint")

    rows = _export(edm_env)

    assert [row["email"] for row in rows] == [
        "'-minus@example.com",
        "'=cmd@example.com",
        "plain@example.com",
    ]
    assert rows[0]["detail"] == '\'=HYPERLINK("https://evil.example","click")'
    assert (rows[2]["reason"], rows[2]["detail"]) == ("complaint", "")
    assert all(row["created_at"].startswith("20") for row in rows)
    assert list(rows[0]) == ["email", "reason", "detail", "created_at"]

    path = tmp_path / "out" / "suppressed.csv"
    path.parent.mkdir()
    assert "3 suppressed addresses written" in _edm(
        edm_env, "suppression", "export", "--csv", str(path)
    )
    with path.open(encoding="utf-8", newline="") as exported:
        assert list(csv.DictReader(exported)) == rows
    assert [p.name for p in path.parent.iterdir()] == ["suppressed.csv"]


def test_an_exported_file_imports_back_with_its_reasons_and_details(
    edm_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    _edm(edm_env, "suppression", "add", "=eq@example.com", "--reason", "complaint", "--detail=-x")
    _edm(edm_env, "suppression", "add", "b@example.com", "--reason", "hard_bounce")
    before = _suppressed(database)
    path = tmp_path / "export.csv"
    _edm(edm_env, "suppression", "export", "--csv", str(path))
    for address in before:
        _edm(edm_env, "suppression", "remove", address)
    assert _suppressed(database) == {}

    _edm(edm_env, "suppression", "import", str(path))

    assert (
        _suppressed(database)
        == before
        == {
            "=eq@example.com": ("complaint", "-x"),
            "b@example.com": ("hard_bounce", None),
        }
    )


def test_remove_takes_an_address_off_in_any_case_and_refuses_an_unknown_one(
    edm_env: dict[str, str], database: Database
) -> None:
    _edm(edm_env, "suppression", "add", "ana@example.com", "keep@example.com")
    assert "removed" in _edm(edm_env, "suppression", "remove", "Ana@EXAMPLE.com")
    assert set(_suppressed(database)) == {"keep@example.com"}

    again = run_edm(["suppression", "remove", "ana@example.com"], edm_env)
    assert again.returncode != 0
    assert again.stderr.strip() == ("edm: error: 'ana@example.com' is not on the suppression list")


def test_a_suppressed_address_is_not_imported_into_a_list(
    edm_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    _edm(edm_env, "suppression", "add", "Gone@Example.com")
    path = tmp_path / "people.csv"
    path.write_text("email,first_name\ngone@example.com,G\nstay@example.com,S\n")
    assert "1 imported" in _edm(edm_env, "lists", "import", str(path), "--list", "people")
    with database.session() as session:
        assert list(session.scalars(select(Recipient.email))) == ["stay@example.com"]


def test_an_address_suppressed_after_scheduling_is_not_sent(
    edm_env: dict[str, str], database: Database, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,first_name\nana@example.com,Ana\nbo@example.com,Bo\n")
    _edm(edm_env, "lists", "import", str(path), "--list", "people")
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
    job_ids = publish_due_jobs(database)

    _edm(edm_env, "suppression", "add", "BO@example.com", "--reason", "unsubscribe")

    with RecordingSmtpServer() as server:
        deliver(delivery_context(database, server, redis_url), job_ids)
        received = [rcpt for message in server.messages for rcpt in message.rcpt_tos]
    assert received == ["ana@example.com"]
    with database.session() as session:
        states = dict(
            session.execute(
                select(Recipient.email, Job.state).join(Job, Job.recipient_id == Recipient.id)
            ).all()
        )
    assert states == {"ana@example.com": JobState.SENT, "bo@example.com": JobState.SUPPRESSED}


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1@example.com", "'+1@example.com"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("'quoted", "'quoted"),
        (None, ""),
        (42, "42"),
    ],
)
def test_safe_cell_neutralises_formulas_and_original_cell_undoes_it(
    value: object, cell: str
) -> None:
    assert safe_cell(value) == cell
    if isinstance(value, str):
        assert original_cell(cell) == value
