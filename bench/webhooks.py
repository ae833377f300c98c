"""Webhook delivery: N events through the outbox to a local receiver that fails a fifth of
requests; prints events/s, duplicates and lost events (which must be 0).

    python -m bench.webhooks --events 100000
    python -m bench.webhooks --events 20000 --database-url postgresql://postgres@127.0.0.1/bench

The events are ``sent`` outcomes written by ``write_jobs`` (the path a worker takes), so the
outbox rows are made as in production; the clock starts when the deliverer processes
(``python -m workers.webhook_delivery``, real processes) start and stops when the receiver has
every event and the outbox is empty. The receiver (``tests/webhook_receiver.py``) runs in this
process, checks every signature, keeps the events of the requests it fails and answers 500, so
the retried batches bring duplicates, each with its event's id.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from campaigns.core.models import JobState, WebhookOutboxEvent, utc_now
from campaigns.core.storage import Database, open_database
from campaigns.jobs.job_store import JobOutcome, write_jobs
from campaigns.webhooks.endpoints import add_endpoint
from tests.factories import campaign_with_jobs
from tests.webhook_receiver import WebhookReceiver

WRITE_CHUNK = 2000


def write_sent_events(database: Database, count: int) -> None:
    _, job_ids = campaign_with_jobs(database, count)
    now = utc_now()
    for start in range(0, count, WRITE_CHUNK):
        write_jobs(
            database,
            outcomes=[
                JobOutcome(
                    job_id=job_id,
                    state=JobState.SENT,
                    code=250,
                    status="2.0.0",
                    reply=f"250 2.0.0 Ok: queued as {job_id}",
                    attempts=1,
                    first_attempt_at=now,
                    sent_at=now,
                )
                for job_id in job_ids[start : start + WRITE_CHUNK]
            ],
        )


def outbox_size(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookOutboxEvent)) or 0)


def run(args: argparse.Namespace, database_url: str, data_dir: Path) -> int:
    database = open_database(database_url)
    with WebhookReceiver(failure_rate=args.failure_rate) as receiver:
        endpoint, secret = add_endpoint(database, receiver.url, events=["sent"], allow_private=True)
        receiver.secret = secret
        started = time.perf_counter()
        write_sent_events(database, args.events)
        print(f"wrote {args.events} events in {time.perf_counter() - started:.1f} s", flush=True)
        environment = {
            **{key: value for key, value in os.environ.items() if not key.startswith("EDM_")},
            "EDM_DATA_DIR": str(data_dir),
            "EDM_DATABASE_URL": database_url,
            "EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE": "1",
            "EDM_OUTGOING_WEBHOOK_BATCH_SIZE": str(args.batch_size),
            "EDM_OUTGOING_WEBHOOK_RETRY_FIRST_S": "0.01",
            "EDM_OUTGOING_WEBHOOK_RETRY_MAX_S": "0.5",
            "EDM_OUTGOING_WEBHOOK_INTERVAL_S": "0.05",
        }
        started = time.perf_counter()
        deliverers = [
            subprocess.Popen(
                [sys.executable, "-m", "workers.webhook_delivery"],
                env=environment,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.deliverers)
        ]
        deadline = started + args.timeout_s
        try:
            while time.perf_counter() < deadline:
                if len(set(event["id"] for event in receiver.events())) >= args.events:
                    break
                time.sleep(0.2)
            elapsed_s = time.perf_counter() - started
            while outbox_size(database) and time.perf_counter() < deadline:
                time.sleep(0.2)
        finally:
            for process in deliverers:
                process.terminate()
            for process in deliverers:
                process.wait(timeout=30)
        events = receiver.events()
    distinct = {event["id"] for event in events}
    lost = args.events - len(distinct)
    print(
        f"events={args.events} delivered={len(distinct)} lost={lost} "
        f"duplicates={len(events) - len(distinct)} requests={receiver.requests} "
        f"failed_requests={receiver.failed} bad_signatures={receiver.bad_signatures} "
        f"seconds={elapsed_s:.1f} events_per_s={len(distinct) / elapsed_s:.0f} "
        f"outbox_left={outbox_size(database)} endpoint={endpoint.id}"
    )
    database.dispose()
    return 0 if lost == 0 and receiver.bad_signatures == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--failure-rate", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--deliverers", type=int, default=1, help="webhook delivery processes")
    parser.add_argument("--timeout-s", type=float, default=timedelta(minutes=10).total_seconds())
    parser.add_argument("--database-url", default="", help="default: a SQLite file of its own")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        sys.exit(run(args, url, Path(directory)))


if __name__ == "__main__":
    main()
