"""The large-list parts: importing a 1,000,000-row CSV, and creating and dispatching its jobs.

The import runs as ``edm lists import`` in its own process, whose peak resident memory is read
from the kernel when it exits (``wait4``). Scheduling and dispatching run here, timed apart:
``schedule_campaign`` (template check against every recipient + one INSERT ... SELECT), then
dispatcher passes until every job was published, first with a publish that only counts, then,
after clearing the jobs' dispatch marks, publishing through Celery into a private Redis queue.
Both dispatch runs report the queue as empty, as if workers kept up, so no pass waits on room.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bench import cpu_usage
from bench.project_run import SENDER, edm_command
from bench.services import delete_queue_keys, edm_environment, fresh_database, scratch_dir
from campaigns.core.models import Job, utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from campaigns.jobs.dispatch import Dispatcher, DispatchLimits
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.sample_lists import write_sample_list

LIST_NAME = "million"
NO_REDISPATCH_S = 86_400.0


def run_million(
    *,
    rows: int,
    database_url: str,
    redis_url: str,
    log_dir: Path,
    overrides: dict[str, str],
    timeout_s: float,
) -> dict[str, Any]:
    results: dict[str, Any] = {"rows": rows}
    queue_name = f"edm-bench-million-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        data_dir = stack.enter_context(scratch_dir("edm-bench-million-"))
        db_url = stack.enter_context(fresh_database(database_url, data_dir))
        stack.callback(delete_queue_keys, redis_url, queue_name)
        env = edm_environment(
            data_dir=data_dir,
            database_url=db_url,
            redis_url=redis_url,
            smtp_url="smtp://127.0.0.1:25",
            queue_name=queue_name,
            overrides=overrides,
        )
        settings = Settings.from_env(env)

        csv_path = data_dir / "million.csv"
        started = time.monotonic()
        facts = write_sample_list(csv_path, rows)
        results["csv_write_s"] = time.monotonic() - started
        results["csv_bytes"] = csv_path.stat().st_size
        results["import"] = _timed_import(csv_path, env, log_dir, timeout_s)
        if results["import"]["imported"] != len(facts.valid_unique_emails):
            raise RuntimeError(
                f"million import: {results['import']['imported']} imported, "
                f"expected {len(facts.valid_unique_emails)}"
            )

        database = open_database(settings.resolved_database_url)
        stack.callback(database.dispose)
        campaign = create_campaign(
            database,
            name="Bench million",
            list_name=LIST_NAME,
            template="newsletter",
            from_address=SENDER,
            templates_dir=settings.resolved_templates_dir,
        )
        started = time.monotonic()
        jobs = schedule_campaign(database, campaign.id, send_at=utc_now()).jobs
        schedule_s = time.monotonic() - started
        results["schedule"] = {"jobs": jobs, "seconds": schedule_s, "jobs_per_s": jobs / schedule_s}

        # Nothing claims the published jobs here, so the dispatcher would publish the first ones
        # again once they are EDM_REDISPATCH_AFTER_S old; this measures the first publication.
        limits = DispatchLimits(
            batch_size=settings.batch_size,
            max_queued_batches=settings.max_queued_batches,
            redispatch_after_s=NO_REDISPATCH_S,
        )
        published: set[int] = set()

        def count_only(job_ids: Sequence[int]) -> None:
            published.update(job_ids)

        results["dispatch_counting"] = _timed_dispatch(
            database, count_only, published, jobs, limits
        )

        from workers.celery_app import make_celery
        from workers.tasks import DELIVER_BATCH

        _clear_dispatch_marks(database, campaign.id)
        app = make_celery(settings, redis_url)
        published.clear()
        with app.producer_or_acquire() as producer:

            def to_redis(job_ids: Sequence[int]) -> None:
                app.send_task(
                    DELIVER_BATCH, args=[list(job_ids)], queue=queue_name, producer=producer
                )
                published.update(job_ids)

            results["dispatch_redis"] = _timed_dispatch(database, to_redis, published, jobs, limits)
        results["settings"] = {
            "batch_size": settings.batch_size,
            "max_queued_batches": settings.max_queued_batches,
            "dispatch_interval_s": settings.dispatch_interval_s,
            "database": "postgresql" if database_url else "sqlite",
        }
    return results


def _timed_import(
    csv_path: Path, env: dict[str, str], log_dir: Path, timeout_s: float
) -> dict[str, Any]:
    report_path = log_dir / "million-import.json"
    error_path = log_dir / "million-import.err"
    with report_path.open("wb") as stdout, error_path.open("wb") as stderr:
        machine_before_s = cpu_usage.machine_busy_s()
        started = time.monotonic()
        process = subprocess.Popen(
            edm_command("lists", "import", str(csv_path), "--list", LIST_NAME, "--json"),
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        # wait4 gives this child's own peak RSS, where RUSAGE_CHILDREN would mix in every
        # child this process ever waited for (workers, sinks).
        _, status, usage = os.wait4(process.pid, 0)
        elapsed_s = time.monotonic() - started
        machine_after_s = cpu_usage.machine_busy_s()
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 or elapsed_s > timeout_s:
        raise RuntimeError(f"million import failed: {error_path.read_text().strip()}")
    report = json.loads(report_path.read_text())
    rows = report["imported"] + report["duplicates"] + report["rejected"] + report["suppressed"]
    cpu_s = usage.ru_utime + usage.ru_stime
    machine_busy_s = machine_after_s - machine_before_s
    return {
        "command": "edm lists import million.csv --list million --json",
        "rows": rows,
        "imported": report["imported"],
        "rejected": report["rejected"],
        "duplicates": report["duplicates"],
        "seconds": elapsed_s,
        "rows_per_s": rows / elapsed_s,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "user_cpu_s": usage.ru_utime,
        "system_cpu_s": usage.ru_stime,
        # Wall time on a shared machine depends on the neighbours; rows per CPU second less so.
        "rows_per_cpu_s": rows / cpu_s if cpu_s else None,
        "machine_busy_percent": round(
            100 * machine_busy_s / (elapsed_s * (os.cpu_count() or 1)), 1
        ),
        "other_processes_cpu_s": round(machine_busy_s - cpu_s, 1),
    }


def _timed_dispatch(
    database: Database,
    publish: Callable[[Sequence[int]], None],
    published: set[int],
    jobs: int,
    limits: DispatchLimits,
) -> dict[str, Any]:
    dispatcher = Dispatcher(database, publish=publish, queue_depth=lambda: 0, limits=limits)
    pass_times_s: list[float] = []
    started = time.monotonic()
    while len(published) < jobs:
        pass_started = time.monotonic()
        result = dispatcher.run_once()
        pass_times_s.append(time.monotonic() - pass_started)
        if result.published_jobs == 0 and len(pass_times_s) > 1:
            raise RuntimeError(f"dispatch stalled at {len(published)} of {jobs} jobs")
    elapsed_s = time.monotonic() - started
    ends = min(10, len(pass_times_s))
    return {
        "jobs": len(published),
        "passes": len(pass_times_s),
        "seconds": elapsed_s,
        "jobs_per_s": len(published) / elapsed_s,
        "mean_pass_s": elapsed_s / len(pass_times_s),
        "slowest_pass_s": max(pass_times_s),
        # A pass that gets slower as more jobs are dispatched would show here.
        "first_passes_mean_s": sum(pass_times_s[:ends]) / ends,
        "last_passes_mean_s": sum(pass_times_s[-ends:]) / ends,
    }


def _clear_dispatch_marks(database: Database, campaign_id: int) -> None:
    with database.session() as session:
        session.execute(
            update(Job).where(Job.campaign_id == campaign_id).values(dispatched_at=None)
        )
