"""The worker monitor against real ``edm worker`` processes, a real Redis and a real SMTP server:
workers seen online from their heartbeats and gone once stopped, queue depth, send rate,
the stuck alarm, ``/api/workers`` and ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from campaigns.core.models import CampaignState, Job, JobState, utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from dashboard.worker_monitor import WorkerMonitor
from tests.conftest import _stop_process_group, run_edm, wait_until
from tests.dashboard_helpers import dashboard_settings, running_dashboard, sign_in
from tests.factories import campaign_with_jobs
from tests.smtp_server import RecordingSmtpServer
from workers.transactional_lane import transactional_queue


@pytest.fixture
def settings(edm_env: dict[str, str]) -> Settings:
    return Settings.from_env(edm_env)


@pytest.fixture
def edm_database(edm_env: dict[str, str]) -> Iterator[Database]:
    database = open_database(edm_env["EDM_DATABASE_URL"])
    yield database
    database.dispose()


@pytest.fixture
def monitor(settings: Settings, edm_database: Database) -> Iterator[WorkerMonitor]:
    watching = WorkerMonitor(settings, edm_database, stuck_after_s=3.0, sample_interval_s=0.3)
    watching.start()
    yield watching
    watching.stop()


def _campaign(database: Database, settings: Settings, tmp_path: Path, recipients: int) -> int:
    csv_path = tmp_path / "list.csv"
    rows = "".join(f"r{i}@example.com,R{i},City,pro\n" for i in range(recipients))
    csv_path.write_text("email,first_name,city,plan\n" + rows)
    import_recipients(database, csv_path, "people")
    campaign = create_campaign(
        database,
        name="Monitored",
        list_name="people",
        template="newsletter",
        from_address="news@example.com",
        templates_dir=settings.resolved_templates_dir,
    )
    return campaign.id


def test_a_worker_is_seen_online_with_its_details_and_gone_once_stopped(
    monitor: WorkerMonitor, start_worker, edm_database: Database, settings: Settings, tmp_path: Path
) -> None:
    worker = start_worker(concurrency=2)

    def online() -> bool:
        rows = monitor.snapshot().workers
        return any(row.pid == worker.pid and row.online and row.concurrency for row in rows)

    assert wait_until(online, timeout_s=60), monitor.snapshot()
    row = next(row for row in monitor.snapshot().workers if row.pid == worker.pid)
    assert row.hostname.startswith(f"edm-{worker.pid}@")
    assert row.concurrency == 2
    # Every campaign process takes transactional mail first.
    assert row.queues == [transactional_queue(settings), settings.queue_name]
    assert monitor.snapshot().broker_error is None

    campaign_id = _campaign(edm_database, settings, tmp_path, 300)
    schedule_campaign(edm_database, campaign_id, send_at=utc_now())

    def sent_some() -> bool:
        snapshot = monitor.snapshot()
        return bool(snapshot.sent_rate_per_s) and any(r.processed for r in snapshot.workers)

    assert wait_until(sent_some, timeout_s=120), monitor.snapshot()
    assert monitor.snapshot().stuck is None
    # Read each pass from the counts the job table's triggers keep, not counted by a scan.
    assert sum(monitor.snapshot().jobs_by_state.values()) == 300

    _stop_process_group(worker)

    def gone() -> bool:
        rows = [row for row in monitor.snapshot().workers if row.pid == worker.pid]
        return bool(rows) and not rows[0].online

    assert wait_until(gone, timeout_s=30), monitor.snapshot()


def test_the_transactional_lane_is_counted_by_the_monitor_the_api_and_edm_status(
    monitor: WorkerMonitor,
    start_worker,
    edm_database: Database,
    edm_env: dict[str, str],
    settings: Settings,
) -> None:
    worker = start_worker(concurrency=1, env={"EDM_TX_PROCESSES": "2"})

    def lane_online() -> bool:
        rows = monitor.snapshot().workers
        return any(row.lane == "transactional" and row.online and row.concurrency for row in rows)

    assert wait_until(lane_online, timeout_s=60), monitor.snapshot()
    snapshot = monitor.snapshot()
    lane = next(row for row in snapshot.workers if row.lane == "transactional")
    campaign = next(row for row in snapshot.workers if row.pid == worker.pid)
    assert lane.hostname.startswith("tx-edm-")
    assert (lane.concurrency, lane.queues) == (2, [transactional_queue(settings)])
    assert campaign.lane == "campaign"
    assert (snapshot.online, snapshot.transactional_processes) == (2, 2)

    with running_dashboard(edm_database, settings, monitor=monitor) as dashboard:
        workers = dashboard.get("/api/workers").json()
        assert workers["transactional_processes"] == 2
        assert sorted(row["lane"] for row in workers["workers"]) == ["campaign", "transactional"]

    status = run_edm(["status", "--json"], edm_env)
    assert sorted(name.split("-")[0] for name in json.loads(status.stdout)["workers_online"]) == [
        "edm",
        "tx",
    ]
    printed = run_edm(["status"], edm_env).stdout
    assert f"{lane.hostname} (transactional lane)" in printed


def test_work_waiting_with_no_worker_raises_the_stuck_alarm(
    monitor: WorkerMonitor, edm_database: Database, settings: Settings, tmp_path: Path
) -> None:
    campaign_id = _campaign(edm_database, settings, tmp_path, 5)
    schedule_campaign(edm_database, campaign_id, send_at=utc_now())
    # No dispatcher either: the campaign is started by hand, as the dispatcher would.
    from campaigns.jobs.dispatch import Dispatcher, DispatchLimits

    Dispatcher(
        edm_database, publish=lambda _ids: None, queue_depth=lambda: 0, limits=DispatchLimits()
    ).run_once()
    assert wait_until(lambda: monitor.snapshot().stuck is not None, timeout_s=30)
    snapshot = monitor.snapshot()
    assert snapshot.due_jobs == 5
    assert "no worker is online" in (snapshot.stuck or "")


def test_jobs_due_leave_out_those_deferred_or_planned_for_later(
    database: Database, tmp_path: Path
) -> None:
    _, job_ids = campaign_with_jobs(database, 8)
    campaign_with_jobs(database, 3, state=CampaignState.PAUSED)
    later = utc_now() + timedelta(hours=1)
    with database.session() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids[:2]))
            .values(state=JobState.DEFERRED, next_attempt_at=later)
        )
        session.execute(update(Job).where(Job.id == job_ids[2]).values(next_attempt_at=later))
        session.execute(
            update(Job)
            .where(Job.id == job_ids[3])
            .values(state=JobState.DEFERRED, next_attempt_at=utc_now())
        )
        session.execute(update(Job).where(Job.id == job_ids[4]).values(state=JobState.SENT))
    monitor = WorkerMonitor(dashboard_settings(tmp_path), database)
    monitor.sample_once()

    snapshot = monitor.snapshot()
    # Three queued and one deferred are due; the paused campaign's jobs wait but are not due.
    assert snapshot.due_jobs == 4
    assert snapshot.jobs_by_state == {"queued": 7, "deferred": 3, "sent": 1}


def test_the_workers_api_and_metrics_read_the_monitor(
    database: Database, tmp_path: Path, redis_url: str, smtp_server: RecordingSmtpServer
) -> None:
    settings = dashboard_settings(tmp_path, redis_url=redis_url, smtp_url=smtp_server.url)
    monitor = WorkerMonitor(settings, database, sample_interval_s=0.2)
    with running_dashboard(database, settings, monitor=monitor) as dashboard:

        def sampled() -> bool:
            # The rates are read just after the job counts that set sampled_at.
            workers = dashboard.get("/api/workers").json()
            return workers["sampled_at"] is not None and bool(workers["relays"])

        assert wait_until(sampled, timeout_s=20)
        workers = dashboard.get("/api/workers").json()
        assert workers["queued_batches"] == 0
        assert workers["relays"][0]["url"].startswith("smtp://127.0.0.1:")
        assert workers["stuck"] is None

        metrics = dashboard.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'edm_jobs{state="sent"} 0.0' in text
        assert "edm_queue_batches 0.0" in text
        assert "edm_workers_online" in text
        assert dashboard.client.get("/metrics").status_code == 401


def test_without_a_monitor_the_workers_api_says_so(database: Database, tmp_path: Path) -> None:
    with running_dashboard(database, dashboard_settings(tmp_path)) as dashboard:
        answer = dashboard.get("/api/workers")
        assert answer.status_code == 503
        assert "worker monitor is not running" in answer.json()["detail"]


def test_the_workers_page_shows_the_measured_rate_of_the_relay_and_of_each_domain(
    edm_database: Database,
    settings: Settings,
    tmp_path: Path,
    start_worker,
    smtp_server: RecordingSmtpServer,
) -> None:
    csv_path = tmp_path / "two-domains.csv"
    rows = "".join(
        f"r{i}@{domain},R{i},City,pro\n"
        for i in range(15)
        for domain in ("alpha.example.com", "beta.example.org")
    )
    csv_path.write_text("email,first_name,city,plan\n" + rows)
    import_recipients(edm_database, csv_path, "two")
    campaign = create_campaign(
        edm_database,
        name="Two domains",
        list_name="two",
        template="newsletter",
        from_address="news@example.com",
        templates_dir=settings.resolved_templates_dir,
    )
    start_worker(concurrency=1)
    schedule_campaign(edm_database, campaign.id, send_at=utc_now())
    assert wait_until(lambda: len(smtp_server.messages) == 30, timeout_s=120)

    monitor = WorkerMonitor(settings, edm_database, sample_interval_s=0.3)
    with running_dashboard(edm_database, settings, monitor=monitor) as dashboard:

        def measured() -> dict:
            workers = dashboard.get("/api/workers").json()
            relays = {row["name"]: row["sent_per_second"] for row in workers["relays"]}
            domains = {row["domain"]: row["sent_per_second"] for row in workers["domains"]}
            return {"relays": relays, "domains": domains}

        def rates_seen() -> bool:
            rates = measured()
            return all(rates["relays"].values()) and all(
                rates["domains"].get(domain) for domain in ("alpha.example.com", "beta.example.org")
            )

        assert wait_until(rates_seen, timeout_s=30), measured()
        rates = measured()
        relay = smtp_server.url.removeprefix("smtp://")
        assert set(rates["relays"]) == {relay}
        # Fifteen each, over at most a minute.
        assert (
            rates["domains"]["alpha.example.com"] == rates["domains"]["beta.example.org"] >= 15 / 60
        )

        sign_in(dashboard.client)
        page = dashboard.client.get("/workers/live").text
        assert f'data-relay-sent="{relay}"' in page
        for domain in ("alpha.example.com", "beta.example.org"):
            assert f'data-domain-sent="{domain}"' in page
        metrics = dashboard.get("/metrics").text
        assert f'edm_relay_send_rate_messages_per_second{{relay="{relay}"}}' in metrics
        assert 'edm_domain_send_rate_messages_per_second{domain="alpha.example.com"}' in metrics
        assert 'edm_domain_send_rate_messages_per_second{domain="beta.example.org"}' in metrics
