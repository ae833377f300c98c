"""How fast the dashboard answers for a 1,000,000-recipient campaign.

``python -m bench.dashboard_pages [--database-url postgresql://...] [--rows N]``

Fills a fresh database (a SQLite file, or a scratch PostgreSQL database beside the one named)
with one list of N recipients and one running campaign of N jobs in a realistic spread of
states, sends over two hours and opens and clicks, all with set-based SQL. Then it times, in
process through the ASGI app with a worker monitor sampling the same database beside it, every
request the campaign and workers pages make: the full pages, the fragments they poll every two
seconds, their JSON API twins, and ``/metrics``. It also times the queries underneath on their
own (jobs by state as kept by the job table's triggers, the GROUP BY they replace, counters).
Results: median, 95th percentile and worst, in ms, as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from bench.services import fresh_database, scratch_dir
from campaigns.core.events import campaign_counters
from campaigns.core.settings import PROJECT_ROOT, Settings
from campaigns.core.storage import Database, open_database
from campaigns.jobs.state_counts import fold_job_state_deltas, job_state_counts_by_scan
from campaigns.lifecycle.campaign_service import campaign_status
from dashboard.accounts import create_user
from dashboard.app import create_app
from dashboard.bearer_tokens import create_api_token
from dashboard.pages_campaigns import draw_charts
from dashboard.roles import Role
from dashboard.worker_monitor import WorkerMonitor

DEFAULT_ROWS = 1_000_000
REPEATS = 20
BUDGET_MS = 300.0

# One in twenty jobs in each state: 14 sent, 2 queued, 1 deferred, 1 bounced, 1 failed, 1 sending.
STATE_OF_SLOT = (
    "CASE WHEN {slot} < 14 THEN 'sent' WHEN {slot} < 16 THEN 'queued' WHEN {slot} = 16 "
    "THEN 'deferred' WHEN {slot} = 17 THEN 'bounced' WHEN {slot} = 18 THEN 'failed' "
    "ELSE 'sending' END"
)


def populate(database: Database, rows: int) -> int:
    """One list, one running campaign of ``rows`` jobs, events; returns the campaign id."""
    postgres = database.engine.dialect.name == "postgresql"
    numbers = (
        f"SELECT generate_series(1, {rows}) AS i"
        if postgres
        else f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
        "SELECT i FROM n"
    )
    now = "now()" if postgres else "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    # Sends spread over the two hours before now, one per job, in job order.
    sent_at = (
        f"now() - make_interval(secs => 7200 - 7200.0 * i / {rows})"
        if postgres
        else "strftime('%Y-%m-%d %H:%M:%f', 'now', "
        f"'-' || (7200 - 7200.0 * i / {rows}) || ' seconds')"
    )
    concat = "||"
    fields = (
        f"json_build_object('email', 'r' {concat} i {concat} '@example.com', 'first_name', "
        f"'R' {concat} i, 'city', 'City', 'plan', 'pro')"
        if postgres
        else "json_object('email', 'r' || i || '@example.com', 'first_name', 'R' || i, "
        "'city', 'City', 'plan', 'pro')"
    )
    slot = "(i % 20)"
    statements = [
        f"INSERT INTO recipient_lists (id, name, field_names, created_at) "
        f'VALUES (1, \'million\', \'["email", "first_name", "city", "plan"]\', {now})',
        f"INSERT INTO recipients (id, list_id, email, email_key, fields, created_at, updated_at) "
        f"SELECT i, 1, 'r' {concat} i {concat} '@example.com', 'r' {concat} i "
        f"{concat} '@example.com', {fields}, {now}, {now} FROM ({numbers}) AS numbers",
        "INSERT INTO campaigns (id, uuid, name, list_id, state, from_address, template_name, "
        "tracking, subject_template, html_template, text_template, send_at, created_at, "
        f"started_at) VALUES (1, 'bench-campaign', 'A million', 1, 'running', "
        f"'news@example.com', 'newsletter', {'true' if postgres else '1'}, 'Hi', '<p>Hi</p>', "
        f"NULL, {now}, {now}, {now})",
        f"INSERT INTO jobs (id, campaign_id, recipient_id, state, attempts, sent_at, "
        f"last_code, last_status, last_reply, updated_at) "
        f"SELECT i, 1, i, {STATE_OF_SLOT.format(slot=slot)}, 1, "
        f"CASE WHEN {slot} < 14 THEN {sent_at} END, "
        f"CASE WHEN {slot} = 17 THEN 550 WHEN {slot} = 18 THEN 554 END, "
        f"CASE WHEN {slot} = 17 THEN '5.1.1' WHEN {slot} = 18 THEN '5.7.1' END, "
        f"CASE WHEN {slot} = 17 THEN '550 5.1.1 no such user' "
        f"WHEN {slot} = 18 THEN '554 5.7.1 rejected' END, {now} FROM ({numbers}) AS numbers",
        # An open from one in five sent recipients, a click from one in twenty.
        "INSERT INTO job_events (job_id, campaign_id, kind, occurred_at, detail) "
        "SELECT id, 1, 'opened', sent_at, '{}' FROM jobs WHERE state = 'sent' AND id % 5 = 0",
        "INSERT INTO job_events (job_id, campaign_id, kind, occurred_at, detail) "
        "SELECT id, 1, 'clicked', sent_at, '{}' FROM jobs WHERE state = 'sent' AND id % 20 = 0",
        "INSERT INTO campaign_counters (campaign_id, name, value) "
        "SELECT 1, 'opens', count(*) FROM job_events WHERE kind = 'opened'",
        "INSERT INTO campaign_counters (campaign_id, name, value) "
        "SELECT 1, 'clicks', count(*) FROM job_events WHERE kind = 'clicked'",
    ]
    if postgres:
        statements += [
            "SELECT setval(pg_get_serial_sequence('recipients', 'id'), max(id)) FROM recipients",
            "SELECT setval(pg_get_serial_sequence('jobs', 'id'), max(id)) FROM jobs",
            "SELECT setval(pg_get_serial_sequence('campaigns', 'id'), max(id)) FROM campaigns",
            "SELECT setval(pg_get_serial_sequence('recipient_lists', 'id'), 1)",
        ]
    with database.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    # As a running dispatcher leaves them: the triggers' deltas folded (PostgreSQL).
    fold_job_state_deltas(database)
    # Statistics and a visibility map as autovacuum would leave them on a live system.
    if postgres:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    else:
        with database.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return 1


def counted_by_scan(database: Database, campaign_id: int) -> dict[str, int]:
    with database.session() as session:
        return job_state_counts_by_scan(session, campaign_id)


def timed(call: Callable[[], Any], repeats: int = REPEATS) -> dict[str, float]:
    call()  # warm: first-use costs (template compilation, connection) are not the steady state
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1),
        "max_ms": round(samples[-1], 1),
    }


def measure(database: Database, settings: Settings, campaign_id: int) -> dict[str, Any]:
    create_user(database, "bench@example.com", "bench password 1", role=Role.ADMIN)
    token = create_api_token(database, "bench@example.com")
    monitor = WorkerMonitor(settings, database, sample_interval_s=1.0)
    app = create_app(settings, database=database, monitor=monitor)
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, Any] = {}
    with TestClient(app) as client:
        monitor.sample_once()

        def get(url: str) -> Callable[[], Any]:
            def call() -> None:
                answer = client.get(url, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")

            return call

        requests = {
            "campaign page": f"/campaigns/{campaign_id}",
            "campaign live (polled every 2 s)": f"/campaigns/{campaign_id}/live",
            "campaign charts (polled every 10 s)": f"/campaigns/{campaign_id}/charts",
            "campaign recipients search": f"/campaigns/{campaign_id}/recipients?q=r12345",
            "GET /api/campaigns/ID": f"/api/campaigns/{campaign_id}",
            "workers page": "/workers",
            "workers live (polled every 2 s)": "/workers/live",
            "GET /api/workers": "/api/workers",
            "GET /metrics": "/metrics",
        }
        for name, url in requests.items():
            results[name] = timed(get(url))
    results["query: campaign_status (kept counts)"] = timed(
        lambda: campaign_status(database, campaign_id)
    )
    results["query: GROUP BY state (what the counts replace)"] = timed(
        lambda: counted_by_scan(database, campaign_id), repeats=5
    )
    results["query: campaign_counters"] = timed(lambda: campaign_counters(database, campaign_id))
    # What one chart drawing costs when the cache has none (once per 8 s per campaign shown).
    results["query: charts, uncached"] = timed(
        lambda: draw_charts(database, campaign_id), repeats=3
    )
    results["monitor: one sampling pass"] = timed(monitor.sample_once, repeats=5)
    results["monitor: database part"] = timed(monitor._sample_database, repeats=5)
    results["monitor: rates part"] = timed(
        lambda: monitor._sample_rates(monitor.redis_url()), repeats=5
    )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_pages")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument(
        "--database-url", default="", help="postgresql://... (default: a SQLite file)"
    )
    parser.add_argument("--redis-url", default="", help="for the monitor's queue depth")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        data_dir = stack.enter_context(scratch_dir("edm-bench-dashboard-"))
        url = stack.enter_context(fresh_database(args.database_url, data_dir))
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            redis_url=args.redis_url,
            secret_key="bench",
            templates_dir=PROJECT_ROOT / "templates",
        )
        database = open_database(settings.resolved_database_url)
        started = time.perf_counter()
        campaign_id = populate(database, args.rows)
        fill_s = time.perf_counter() - started
        results = measure(database, settings, campaign_id)
        database.dispose()
    engine = "postgresql" if args.database_url else "sqlite"
    print(f"{args.rows:,} recipients on {engine} (filled in {fill_s:.0f} s)")
    print(f"budget: {BUDGET_MS:.0f} ms at the 95th percentile for page and API requests")
    width = max(len(name) for name in results)
    for name, numbers in results.items():
        flag = (
            ""
            if numbers["p95_ms"] <= BUDGET_MS or name.startswith(("query", "monitor"))
            else "  OVER"
        )
        print(
            f"  {name:<{width}}  median {numbers['median_ms']:>7.1f}  p95 {numbers['p95_ms']:>7.1f}"
            f"  max {numbers['max_ms']:>7.1f}{flag}"
        )
    print(json.dumps({"rows": args.rows, "engine": engine, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
