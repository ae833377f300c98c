"""Housekeeping from the command line (``edm campaigns list|edit|clone|archive|delete``,
``edm templates list|delete``, ``edm lists delete``), with what remains checked in the
database and every refusal one line on stderr with a non-zero exit."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaigns.core.models import (
    Campaign,
    CampaignState,
    Job,
    JobState,
    Recipient,
    RecipientList,
)
from campaigns.core.settings import PROJECT_ROOT
from campaigns.core.storage import Database, open_database
from tests.conftest import run_edm
from tests.factories import campaign_with_jobs, set_jobs

PEOPLE_CSV = "email,first_name\nana@example.com,Ana\nbo@example.com,Bo\n"


@pytest.fixture
def env(edm_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # A copy of the templates: deleting one here must never touch the checkout's folder.
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    return {**edm_env, "EDM_TEMPLATES_DIR": str(templates)}


@pytest.fixture
def database(env: dict[str, str]) -> Iterator[Database]:
    opened = open_database(env["EDM_DATABASE_URL"])
    yield opened
    opened.dispose()


def _ok(args: list[str], env: dict[str, str]) -> str:
    result = run_edm(args, env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _one_line_error(args: list[str], env: dict[str, str]) -> str:
    result = run_edm(args, env)
    assert result.returncode != 0
    stderr = result.stderr.strip()
    assert len(stderr.splitlines()) == 1 and stderr.startswith("edm: error: "), stderr
    return stderr


def _campaign(database: Database, campaign_id: int) -> Campaign | None:
    with database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None:
            session.expunge(campaign)
        return campaign


def _draft(env: dict[str, str], tmp_path: Path) -> int:
    (tmp_path / "people.csv").write_text(PEOPLE_CSV)
    _ok(["lists", "import", str(tmp_path / "people.csv"), "--list", "people"], env)
    created = _ok(
        ["campaigns", "create", "--name", "Spring", "--list", "people", "--template",
         "newsletter", "--from", "news@example.com", "--json"],
        env,
    )  # fmt: skip
    return int(json.loads(created)["id"])


def test_a_draft_is_edited_cloned_listed_and_deleted(
    env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    campaign_id = _draft(env, tmp_path)

    _ok(
        ["campaigns", "edit", str(campaign_id), "--name", "Spring, fixed", "--template",
         "announcement", "--no-tracking"],
        env,
    )  # fmt: skip
    edited = _campaign(database, campaign_id)
    assert edited is not None
    assert (edited.name, edited.template_name, edited.tracking) == (
        "Spring, fixed",
        "announcement",
        False,
    )
    assert "Northwind Flows" in edited.subject_template

    cloned = _ok(["campaigns", "clone", str(campaign_id), "--name", "Autumn"], env)
    clone_id = int(cloned.split()[1])
    listed = json.loads(_ok(["campaigns", "list", "--json"], env))["campaigns"]
    assert [(row["id"], row["name"]) for row in listed] == [
        (clone_id, "Autumn"),
        (campaign_id, "Spring, fixed"),
    ]

    _ok(["campaigns", "delete", str(clone_id)], env)
    assert _campaign(database, clone_id) is None
    error = _one_line_error(["campaigns", "edit", str(campaign_id)], env)
    assert "give at least one of --name" in error


def test_scheduling_to_nobody_is_a_one_line_error(
    env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    campaign_id = _draft(env, tmp_path)
    _ok(["suppression", "add", "ana@example.com", "bo@example.com"], env)

    error = _one_line_error(["campaigns", "schedule", str(campaign_id), "--now"], env)

    assert error == (
        "edm: error: list: 'people' has no one to send to (all 2 of its recipients are suppressed)"
    )
    stored = _campaign(database, campaign_id)
    assert stored is not None and stored.state == CampaignState.DRAFT
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_campaign_that_has_sent_is_archived_and_its_list_stays(
    env: dict[str, str], database: Database
) -> None:
    campaign_id, job_ids = campaign_with_jobs(database, 2, state=CampaignState.COMPLETED)
    set_jobs(database, {job_id: {"state": JobState.SENT} for job_id in job_ids})
    campaign = _campaign(database, campaign_id)
    assert campaign is not None

    refused = _one_line_error(["campaigns", "delete", str(campaign_id)], env)
    assert "archive it instead" in refused
    _ok(["campaigns", "archive", str(campaign_id)], env)
    assert "no campaigns" in _ok(["campaigns", "list"], env)
    archived = _ok(["campaigns", "list", "--archived"], env)
    assert f"{campaign_id}\tcompleted" in archived and "2/2 sent" in archived

    list_name = _list_name(database, campaign.list_id)
    plan = _ok(["lists", "delete", list_name], env)
    assert "stays" in plan and f"campaign {campaign_id}" in plan
    refusal = _one_line_error(["lists", "delete", list_name, "--yes"], env)
    assert "keeps its history" in refusal
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Recipient)) == 2
        assert session.scalar(select(func.count()).select_from(Job)) == 2


def _list_name(database: Database, list_id: int) -> str:
    with database.session() as session:
        return str(session.scalar(select(RecipientList.name).where(RecipientList.id == list_id)))


def test_templates_are_listed_and_deleted(env: dict[str, str], tmp_path: Path) -> None:
    listed = _ok(["templates", "list"], env)
    assert "announcement\t" in listed and "newsletter\t" in listed

    _ok(["templates", "delete", "announcement"], env)

    assert not (tmp_path / "templates" / "announcement").exists()
    assert (tmp_path / "templates" / "newsletter").is_dir()
    error = _one_line_error(["templates", "delete", "announcement"], env)
    assert "template 'announcement' not found" in error
