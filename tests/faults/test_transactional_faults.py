"""Transactional mail under faults, with real processes: a worker killed with SIGKILL while
messages are on the lane, and Redis restarted empty with messages recorded but not sent. What
the SMTP server received is the check: every message once, none twice.

Each test prints a ``fault report:`` line with what it measured (``pytest -s`` shows it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.core.models import (
    IN_FLIGHT_JOB_STATES,
    PENDING_JOB_STATES,
    Job,
    JobState,
    Recipient,
    TransactionalMessage,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.job_store import LOST_IN_TRANSMISSION
from campaigns.transactional.requests import MessageRequest
from campaigns.transactional.submission import submit_message
from tests.conftest import wait_until
from tests.fault_helpers import fault_report, process_group, received_by, worker_env
from tests.smtp_server import RecordingSmtpServer
from workers.embedded_redis import EmbeddedRedis, find_redis_server
from workers.transactional_lane import publish_or_leave

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads process groups from /proc"
)

StartWorker = Callable[..., subprocess.Popen[bytes]]
SENDER = "shop@example.com"


def send_messages(database: Database, settings: Settings, addresses: list[str]) -> dict[str, str]:
    """One message to each address, through the function the API and ``edm send`` call: each
    is committed, then published on the lane. Message id by address."""
    ids = {}
    for index, address in enumerate(addresses):
        accepted = submit_message(
            database,
            MessageRequest(
                to=address,
                from_address=SENDER,
                subject="Your code",
                html="<p>{{ code }}</p>",
                data={"code": f"{index:06d}"},
                idempotency_key=f"code-{address}",
            ),
            settings=settings,
            idempotency_scope="cli",
            publish=lambda job_ids: publish_or_leave(settings, job_ids),
        )
        ids[address] = accepted.message_id
    return ids


def tx_jobs(database: Database) -> dict[str, Job]:
    with database.session() as session:
        rows = session.execute(
            select(Recipient.email, Job)
            .join(Job, Job.recipient_id == Recipient.id)
            .join(TransactionalMessage, TransactionalMessage.job_id == Job.id)
        )
        return {email: job for email, job in rows}


def settled(database: Database, count: int) -> bool:
    jobs = tx_jobs(database)
    return len(jobs) == count and not any(job.state in PENDING_JOB_STATES for job in jobs.values())


def in_flight_by_pid(database: Database) -> Counter[int]:
    owners = [
        job.claimed_by
        for job in tx_jobs(database).values()
        if job.state in IN_FLIGHT_JOB_STATES and job.claimed_by
    ]
    return Counter(int(owner.split(":")[1]) for owner in owners)


def test_a_worker_killed_with_messages_on_the_lane_sends_each_once_after_a_restart(
    edm_env: dict[str, str], database: Database, start_worker: StartWorker
) -> None:
    count = 40
    addresses = [f"user{i}@example.net" for i in range(count)]
    with RecordingSmtpServer(delay_s=0.1) as server:
        env = worker_env(
            server, lease_s=5, redispatch_after_s=3, smtp_connections=2, tx_processes=2
        )
        settings = Settings.from_env({**edm_env, **env})
        doomed = start_worker(concurrency=1, env=env)
        send_messages(database, settings, addresses)

        def doomed_is_sending() -> bool:
            members = process_group(doomed.pid)
            return len(server.messages) >= 5 and any(
                pid in members for pid in in_flight_by_pid(database)
            )

        assert wait_until(doomed_is_sending, timeout_s=90, interval_s=0.02)
        time.sleep(random.uniform(0.0, 0.1))
        received_at_kill = len(server.messages)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=60)
        # The same worker started again: what the dead one held comes back with its lease.
        start_worker(concurrency=1, env=env)
        assert wait_until(lambda: settled(database, count), timeout_s=120), {
            email: job.state for email, job in tx_jobs(database).items()
        }
        received = received_by(server)
    jobs = tx_jobs(database)

    duplicates = {address: n for address, n in received.items() if n > 1}
    unknown = {address for address, job in jobs.items() if job.state == JobState.UNKNOWN}
    fault_report(
        f"tx SIGKILL: {received_at_kill}/{count} received at the kill, {len(duplicates)} "
        f"duplicates, {len(unknown)} unknown ({len(unknown & set(received))} reached the relay)"
    )
    assert duplicates == {}
    # A message whose data was on the wire when its process died may have arrived: it ends
    # unknown, never sent again. One at most per process (the lane sends one at a time each).
    assert len(unknown) <= 3
    assert all(jobs[address].last_reply == LOST_IN_TRANSMISSION for address in unknown)
    assert set(received) | unknown == set(addresses)
    assert {jobs[a].state for a in addresses if a not in unknown} == {JobState.SENT}


@pytest.mark.skipif(find_redis_server() is None, reason="no redis-server binary")
def test_redis_restarted_empty_with_messages_recorded_sends_each_once(
    edm_env: dict[str, str], database: Database, start_worker: StartWorker, tmp_path: Path
) -> None:
    count = 40
    addresses = [f"user{i}@example.net" for i in range(count)]
    first = EmbeddedRedis(tmp_path / "redis")
    first.start()
    second: EmbeddedRedis | None = None
    try:
        with RecordingSmtpServer(delay_s=0.1) as server:
            env = worker_env(
                server,
                redis_url=first.url,
                redispatch_after_s=2,
                smtp_connections=1,
                tx_processes=1,
            )
            settings = Settings.from_env({**edm_env, **env})
            start_worker(concurrency=1, env=env)
            # Published at once, faster than one process sends them: most wait in the queue.
            send_messages(database, settings, addresses)
            assert wait_until(lambda: len(server.messages) >= 3, timeout_s=90, interval_s=0.02)
            first.stop()
            second = EmbeddedRedis(tmp_path / "redis", port=first.port)
            second.start()
            received_at_restart = len(server.messages)
            assert wait_until(lambda: settled(database, count), timeout_s=120), {
                email: job.state for email, job in tx_jobs(database).items()
            }
            received = received_by(server)
    finally:
        first.stop()
        if second is not None:
            second.stop()

    fault_report(
        f"tx Redis restart: {received_at_restart}/{count} received at the restart, "
        f"{sum(n - 1 for n in received.values())} duplicates"
    )
    assert received_at_restart < count
    assert received == Counter(addresses)
    assert {job.state for job in tx_jobs(database).values()} == {JobState.SENT}
