"""The tracking server under load: opens, clicks and one-click unsubscribes, driven by ``wrk``.

Run: ``.venv/bin/python -m bench.tracking [--database-url postgresql://...] [--seconds 10]``.

For each database (SQLite in a scratch folder, and PostgreSQL when ``--database-url`` names a
server: a scratch database beside it), a list of recipients is imported and one campaign per
server layout is scheduled with the ``newsletter`` template; its jobs are marked sent an hour ago
and its links registered, and the URLs are made by the functions the message builder writes
them with (``campaigns.tracking.routes``): the URLs of that campaign's messages. Each layout
serves them with a real ``edm track``:

- ``queued, N workers``: events appended to Redis, written by the writers (``--workers N``);
- ``direct``: ``--sync-events``, each event written before its answer (the path without Redis,
  and the only path before the queue existed).

``wrk -t2 -c32`` requests each kind of URL for ``--seconds``, a Lua script rotating through
them; the report gives requests/s, p50/p99 latency, CPU milliseconds per request (the tracking
processes, Redis, PostgreSQL's backends) and, once the writers are idle, the rows written
against the requests answered. Needs ``wrk`` on PATH and Redis (``EDM_REDIS_URL``, else a
private embedded one).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bench import cpu_usage
from bench.processes import end_process, start_logged
from bench.services import (
    bench_redis,
    delete_queue_keys,
    edm_environment,
    fresh_database,
    scratch_dir,
)
from campaigns.core.models import Job, JobEvent, JobState, utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from campaigns.tracking.links import link_id_for, register_links
from campaigns.tracking.routes import click_url, open_pixel_url, unsubscribe_url

BASE_URL = "http://127.0.0.1"
SECRET_KEY = "bench-secret"
RECIPIENTS = 5000
LINKS = ("https://shop.example/spring", "https://shop.example/news", "https://shop.example/faq")
DESKTOP_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Mail"
KINDS = {
    # kind -> (HTTP method, event kind written, answer counted)
    "open": ("GET", "opened"),
    "click": ("GET", "clicked"),
    "unsubscribe": ("POST", "unsubscribed"),
}
_LUA = """
local paths = {}
for line in io.lines(os.getenv("EDM_BENCH_PATHS")) do paths[#paths + 1] = line end
local counter = 0
local threads = {}
function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end
function init(args)
  counter = tonumber(offset) or 0
end
function request()
  counter = counter + 1
  return wrk.format(nil, paths[(counter % #paths) + 1])
end
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Layout:
    name: str
    options: tuple[str, ...]


LAYOUTS = (
    Layout("queued, 2 workers", ("--workers", "2")),
    Layout("queued, 1 worker", ("--workers", "1")),
    Layout("direct (--sync-events), 1 worker", ("--sync-events",)),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to measure too")
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (32)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk: not found on PATH (Debian: apt-get install wrk)")
    databases = [("sqlite", "")] + (
        [("postgresql", args.database_url)] if args.database_url else []
    )
    results = []
    with scratch_dir("edm-bench-tracking-") as work_dir, bench_redis(work_dir) as redis:
        for database_name, database_url in databases:
            for layout in LAYOUTS:
                for kind in KINDS:
                    row = _measure(work_dir, redis.url, redis.pid, database_url, layout, kind, args)
                    row["database"] = database_name
                    results.append(row)
                    _print_row(row)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _measure(
    work_dir: Path,
    redis_url: str,
    redis_pid: int | None,
    database_url: str,
    layout: Layout,
    kind: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    queue_name = f"edm-bench-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        data_dir = stack.enter_context(scratch_dir("edm-bench-tracking-data-"))
        db_url = stack.enter_context(fresh_database(database_url, data_dir))
        stack.callback(delete_queue_keys, redis_url, queue_name)
        env = edm_environment(
            data_dir=data_dir,
            database_url=db_url,
            redis_url=redis_url,
            smtp_url="smtp://127.0.0.1:9",
            queue_name=queue_name,
            overrides={"EDM_SECRET_KEY": SECRET_KEY, "EDM_TRACKING_MAX_IN_FLIGHT": "1024"},
        )
        settings = Settings.from_env(env)
        database = open_database(settings.resolved_database_url)
        stack.callback(database.dispose)
        port = _free_port()
        paths = _sent_campaign_paths(database, data_dir, settings.secret, kind)
        paths_file = work_dir / f"paths-{queue_name}.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        server = start_logged(
            [sys.executable, "-m", "edm", "track", "--port", str(port), *layout.options],
            env=env,
            log_path=work_dir / f"track-{queue_name}.log",
        )
        stack.callback(end_process, server)
        _wait_for_port(port)
        roots = [server.pid, *([redis_pid] if redis_pid else [])]
        database_name = db_url.rsplit("/", 1)[-1] if db_url else None
        if database_name:
            roots += cpu_usage.pids_with_command(f" {database_name} ")

        def classify(pid: int, command: str) -> str:
            if pid == redis_pid:
                return "redis"
            if database_name and f" {database_name} " in command:
                return "postgresql"
            return "edm track"

        before = cpu_usage.snapshot(roots, classify)
        started = time.monotonic()
        run = _wrk(port, paths_file, kind, args)
        elapsed_s = time.monotonic() - started
        roots += cpu_usage.pids_with_command(f" {database_name} ") if database_name else []
        after = cpu_usage.snapshot(roots, classify)
        answered = run["requests"] - run["non_2xx_3xx"]
        written, drain_s = _rows_when_idle(database, KINDS[kind][1])
        cpu = cpu_usage.cpu_per_message(
            before, after, messages=max(run["requests"], 1), elapsed_s=elapsed_s
        )
        return {
            "layout": layout.name,
            "kind": kind,
            "requests_per_s": round(run["requests"] * 1e6 / run["duration_us"]),
            "p50_ms": run["p50_us"] / 1000,
            "p99_ms": run["p99_us"] / 1000,
            "max_ms": run["max_us"] / 1000,
            "answered": answered,
            "refused_or_failed": run["non_2xx_3xx"] + run["socket_errors"],
            "rows_written": written,
            "distinct_urls": len(paths),
            "written_within_s": round(drain_s, 1),
            "cpu_ms_per_request": cpu["measured_ms_per_message"],
            "cpu": cpu["ms_per_message"],
        }


def _sent_campaign_paths(database: Database, data_dir: Path, secret: bytes, kind: str) -> list[str]:
    """The paths of ``kind`` of a campaign of RECIPIENTS messages, taken as sent an hour ago."""
    csv_path = data_dir / "people.csv"
    csv_path.write_text(
        "email,first_name,city,plan\n"
        + "".join(f"p{i}@bench.example,P{i},Lisbon,Pro\n" for i in range(RECIPIENTS))
    )
    import_recipients(database, csv_path, "bench")
    templates_dir = Settings().resolved_templates_dir
    campaign = create_campaign(
        database,
        name="Tracking bench",
        list_name="bench",
        template="newsletter",
        from_address="News <news@bench.example>",
        templates_dir=templates_dir,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    with database.session() as session:
        session.execute(
            update(Job)
            .where(Job.campaign_id == campaign.id)
            .values(state=JobState.SENT, sent_at=utc_now() - timedelta(hours=1))
        )
        job_ids = list(session.scalars(select(Job.id).where(Job.campaign_id == campaign.id)))
    register_links(database, campaign.id, {link_id_for(url): url for url in LINKS})
    if kind == "open":
        urls = [open_pixel_url(BASE_URL, secret, job_id) for job_id in job_ids]
    elif kind == "click":
        urls = [
            click_url(BASE_URL, secret, job_id, link_id_for(LINKS[job_id % len(LINKS)]))
            for job_id in job_ids
        ]
    else:
        urls = [unsubscribe_url(BASE_URL, secret, job_id) for job_id in job_ids]
    return [url.removeprefix(BASE_URL) for url in urls]


def _wrk(port: int, paths_file: Path, kind: str, args: argparse.Namespace) -> dict[str, int]:
    script = paths_file.with_suffix(".lua")
    method = KINDS[kind][0]
    lua = _LUA
    if method == "POST":
        lua = lua.replace(
            "wrk.format(nil,",
            'wrk.format("POST",',
        ).replace(
            "paths[(counter % #paths) + 1])",
            "paths[(counter % #paths) + 1], "
            '{["Content-Type"] = "application/x-www-form-urlencoded"}, '
            '"List-Unsubscribe=One-Click")',
        )
    script.write_text(lua)
    command = [
        *("wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "5s"),
        *("-s", str(script), "-H", f"User-Agent: {DESKTOP_MAIL}", f"http://127.0.0.1:{port}"),
    ]
    output = subprocess.run(
        command,
        env={"EDM_BENCH_PATHS": str(paths_file), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=args.seconds + 60,
    ).stdout
    result: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return result


def _rows_when_idle(database: Database, event_kind: str) -> tuple[int, float]:
    """Rows of the kind once their count stops growing (the writers are done), and how long
    after the load that took."""
    started = time.monotonic()
    last, stable_since = -1, started
    while time.monotonic() - started < 120:
        with database.session() as session:
            count = session.scalar(
                select(func.count()).select_from(JobEvent).where(JobEvent.kind == event_kind)
            )
        if count != last:
            last, stable_since = count or 0, time.monotonic()
        elif time.monotonic() - stable_since > 2.0:
            break
        time.sleep(0.2)
    return last, stable_since - started


def _print_row(row: dict[str, object]) -> None:
    print(
        f"{row['database']:<10} {row['layout']:<34} {row['kind']:<11} "
        f"{row['requests_per_s']:>6} req/s  p50 {row['p50_ms']:>6.1f} ms  "
        f"p99 {row['p99_ms']:>7.1f} ms  cpu {row['cpu_ms_per_request']:.3f} ms/req  "
        f"answered {row['answered']:>6}  written {row['rows_written']:>6}  "
        f"refused/failed {row['refused_or_failed']}",
        flush=True,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"edm track did not listen on port {port} within 60 s")


if __name__ == "__main__":
    main()
