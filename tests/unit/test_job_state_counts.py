"""Jobs by state per campaign, kept by triggers on the job table: every path that changes a
job's state is counted, on SQLite and PostgreSQL, and the counts always equal a real count.

Full campaigns with real workers are checked in tests/faults/test_faults.py (mixed outcomes and
retry, a worker killed mid-send, cancel); here each path is driven on its own, plus folding, the
migration of an existing database, and many writers at once.

Counts through a delivery to a real SMTP server are in
tests/integration/test_job_state_counts.py."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta

from alembic import command as alembic_command
from alembic.config import Config
from sqlalchemy import delete, func, select, text, update

from campaigns.core.models import Campaign, Job, JobState, JobStateCount, JobStateDelta, utc_now
from campaigns.core.storage import MIGRATIONS_DIR, Database
from campaigns.jobs.job_store import (
    claim_jobs,
    mark_transmitting,
    release_expired_leases,
    release_jobs,
)
from campaigns.jobs.state_counts import (
    fold_job_state_deltas,
    job_state_counts,
    job_state_counts_by_campaign,
    job_state_totals,
)
from tests.factories import campaign_with_jobs
from tests.state_count_helpers import assert_counts_kept, counted_by_scan


def _folded_totals(database: Database, campaign_id: int) -> dict[str, int]:
    """Fold, then read the totals table alone: nothing may be left behind in the deltas."""
    fold_job_state_deltas(database)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(JobStateDelta)) == 0
        rows = session.execute(
            select(JobStateCount.state, JobStateCount.jobs).where(
                JobStateCount.campaign_id == campaign_id, JobStateCount.jobs != 0
            )
        )
        return {state: jobs for state, jobs in rows}


def test_expired_leases_and_released_claims_are_counted_back(database: Database) -> None:
    campaign_id, job_ids = campaign_with_jobs(database, 8)
    claimed = claim_jobs(database, job_ids[:6], worker_id="w:1", lease_s=30)
    assert len(claimed) == 6
    mark_transmitting(database, job_ids[:2], worker_id="w:1")
    assert release_jobs(database, job_ids[4:6], worker_id="w:1") == 2
    assert assert_counts_kept(database, campaign_id) == {
        JobState.QUEUED: 4,
        JobState.SENDING: 2,
        JobState.TRANSMITTING: 2,
    }

    # The worker died: its sending jobs go back to the queue, its transmitting ones end unknown.
    assert release_expired_leases(database, utc_now() + timedelta(hours=1)) == 4
    kept = assert_counts_kept(database, campaign_id)
    assert kept == {JobState.QUEUED: 6, JobState.UNKNOWN: 2}
    assert _folded_totals(database, campaign_id) == kept


def test_folding_changes_no_count_and_counts_keep_going_after_it(database: Database) -> None:
    first, first_jobs = campaign_with_jobs(database, 5)
    second, _ = campaign_with_jobs(database, 3)
    with database.session() as session:
        session.execute(update(Job).where(Job.id.in_(first_jobs[:2])).values(state="sent"))
    with database.session() as session:
        before = job_state_counts_by_campaign(session, [first, second])
        totals_before = job_state_totals(session)

    fold_job_state_deltas(database)
    with database.session() as session:
        assert job_state_counts_by_campaign(session, [first, second]) == before
        assert job_state_totals(session) == totals_before
    assert before == {first: {"queued": 3, "sent": 2}, second: {"queued": 3}}

    with database.session() as session:
        session.execute(update(Job).where(Job.id == first_jobs[2]).values(state="failed"))
    assert assert_counts_kept(database, first) == {"queued": 2, "sent": 2, "failed": 1}
    assert _folded_totals(database, first) == {"queued": 2, "sent": 2, "failed": 1}


def test_deleted_jobs_and_campaigns_are_no_longer_counted(database: Database) -> None:
    campaign_id, job_ids = campaign_with_jobs(database, 4)
    kept_id, _ = campaign_with_jobs(database, 2)
    with database.session() as session:
        session.execute(delete(Job).where(Job.id == job_ids[0]))
    assert assert_counts_kept(database, campaign_id) == {JobState.QUEUED: 3}

    # Its jobs go with it (ON DELETE CASCADE), and folding drops their deltas quietly.
    with database.session() as session:
        session.execute(delete(Campaign).where(Campaign.id == campaign_id))
    assert _folded_totals(database, campaign_id) == {}
    with database.session() as session:
        assert sum(job_state_counts(session, campaign_id).values()) == 0
    assert assert_counts_kept(database, kept_id) == {JobState.QUEUED: 2}


def test_upgrading_an_existing_database_counts_the_jobs_it_holds(database_url: str) -> None:
    database = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    states = ["queued", "sent", "sent", "bounced", "deferred", "sent", "unknown"]
    try:
        with database.engine.connect() as connection:
            config.attributes["connection"] = connection
            alembic_command.upgrade(config, "0005_dashboard")
            connection.execute(
                text(
                    "INSERT INTO recipient_lists (id, name, field_names, created_at)"
                    " VALUES (1, 'l', '[]', CURRENT_TIMESTAMP)"
                )
            )
            for campaign_id in (1, 2):
                connection.execute(
                    text(
                        "INSERT INTO campaigns (id, uuid, name, list_id, state, from_address,"
                        " template_name, subject_template, html_template, created_at, tracking)"
                        " VALUES (:id, :uuid, 'old', 1, 'running', 'a@example.com', 't', 's',"
                        " 'h', CURRENT_TIMESTAMP, true)"
                    ),
                    {"id": campaign_id, "uuid": f"u{campaign_id}"},
                )
            for number, state in enumerate(states, start=1):
                connection.execute(
                    text(
                        "INSERT INTO recipients (id, list_id, email, email_key, fields,"
                        " created_at, updated_at) VALUES (:id, 1, :email, :email, '{}',"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": number, "email": f"r{number}@example.com"},
                )
                # Campaign 1 has every recipient; campaign 2 the first three.
                for campaign_id in (1, 2) if number <= 3 else (1,):
                    connection.execute(
                        text(
                            "INSERT INTO jobs (campaign_id, recipient_id, state, attempts,"
                            " updated_at) VALUES (:campaign, :recipient, :state, 1,"
                            " CURRENT_TIMESTAMP)"
                        ),
                        {"campaign": campaign_id, "recipient": number, "state": state},
                    )
            connection.commit()

        database.upgrade()
        assert assert_counts_kept(database, 1) == {
            "queued": 1,
            "sent": 3,
            "bounced": 1,
            "deferred": 1,
            "unknown": 1,
        }
        assert assert_counts_kept(database, 2) == {"queued": 1, "sent": 2}
        # And from now on the triggers keep them.
        with database.session() as session:
            session.execute(update(Job).where(Job.state == "queued").values(state="sent"))
        assert assert_counts_kept(database, 1)["sent"] == 4
        assert assert_counts_kept(database, 2) == {"sent": 3}
    finally:
        database.dispose()


def test_many_writers_at_once_end_with_exact_counts_and_no_deadlock(database: Database) -> None:
    """Writers change states of one campaign in transactions of several statements each, in
    random orders, while the dispatcher's fold runs beside them and a reader checks that every
    read adds up to the campaign's size. Counter rows shared by the writers would deadlock."""
    writers, jobs_per_writer, transactions = 4, 60, 25
    campaign_id, job_ids = campaign_with_jobs(database, writers * jobs_per_writer)
    start = threading.Barrier(writers + 2)
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []
    reads: list[int] = []

    def write(own: list[int], seed: int) -> None:
        start.wait()
        _change_states_at_random(database, own, seed=seed, transactions=transactions)

    def fold() -> None:
        start.wait()
        while writing.is_set():
            fold_job_state_deltas(database)

    def read() -> None:
        start.wait()
        while writing.is_set():
            with database.session() as session:
                reads.append(sum(job_state_counts(session, campaign_id).values()))

    def guarded(target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        except BaseException as error:
            errors.append(error)
            writing.clear()

    threads = [
        threading.Thread(
            target=guarded,
            args=(write, job_ids[n * jobs_per_writer : (n + 1) * jobs_per_writer], n),
        )
        for n in range(writers)
    ]
    helpers = [threading.Thread(target=guarded, args=(task,)) for task in (fold, read)]
    for thread in (*threads, *helpers):
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    writing.clear()
    for thread in helpers:
        thread.join(timeout=60)

    assert errors == []
    assert reads and set(reads) == {writers * jobs_per_writer}
    kept = assert_counts_kept(database, campaign_id)
    assert _folded_totals(database, campaign_id) == kept == counted_by_scan(database, campaign_id)


def _change_states_at_random(
    database: Database, job_ids: list[int], *, seed: int, transactions: int
) -> None:
    """Transactions of two to five statements, each giving some of ``job_ids`` random states."""
    chooser = random.Random(seed)
    states = [str(state) for state in JobState]
    for _ in range(transactions):
        with database.session() as session:
            for _ in range(chooser.randint(2, 5)):
                chosen = chooser.sample(job_ids, chooser.randint(1, 15))
                if chooser.random() < 0.5:
                    # One statement for many jobs, as a claim or a cancel does.
                    session.execute(
                        update(Job).where(Job.id.in_(chosen)).values(state=chooser.choice(states))
                    )
                else:
                    # One statement per job, as recording grouped outcomes does.
                    session.execute(
                        update(Job),
                        [{"id": job_id, "state": chooser.choice(states)} for job_id in chosen],
                    )
