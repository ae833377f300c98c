"""The project end to end: ``edm campaigns schedule ID --now`` until the sink has every message.

The list is imported and the campaign created before the clock starts; the workers are started
and have said "ready" before it starts too. What is timed is what a person waits for after
pressing "send": writing the jobs, dispatching, claiming, rendering, SMTP, recording.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from bench import cpu_usage
from bench.processes import end_process, log_tail, start_logged, wait_for_log_line
from bench.profiling import PySpyRecorder
from bench.services import (
    RedisService,
    delete_queue_keys,
    edm_environment,
    fresh_database,
    scratch_dir,
)
from bench.sinks import SmtpSink
from campaigns.core.settings import Settings
from campaigns.core.storage import open_database
from campaigns.lifecycle.campaign_service import CampaignStatus, campaign_status

WORKER_MODES = {
    "1x2": ("one `edm worker --concurrency 2`", [2]),
    "2x1": ("two `edm worker --concurrency 1` (the second with --no-dispatcher)", [1, 1]),
}
WORKER_READY_TIMEOUT_S = 60.0
SENDER = "Bench News <news@bench.example>"


@dataclass
class ProjectResult:
    name: str
    workers: str
    database: str
    messages: int
    elapsed_s: float
    messages_per_s: float
    schedule_command_s: float
    first_message_s: float | None
    import_s: float
    sink_received: int
    sent_in_database: int
    job_states: dict[str, int]
    """Every non-zero job state of the campaign after the run, as ``campaign_status`` counts."""
    campaign_state: str
    settings: dict[str, str] = field(default_factory=dict)
    cpu: dict[str, object] = field(default_factory=dict)
    """CPU milliseconds per message by process group, and the machine's (see bench.cpu_usage)."""
    profile: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def edm_command(*args: str) -> list[str]:
    """``edm ARGS`` as this interpreter runs it (the same entry point as the console script)."""
    return [sys.executable, "-m", "edm", *args]


def run_edm_json(args: list[str], env: dict[str, str], *, timeout_s: float) -> dict[str, object]:
    result = subprocess.run(
        edm_command(*args, "--json"), env=env, capture_output=True, text=True, timeout=timeout_s
    )
    if result.returncode != 0:
        raise RuntimeError(f"edm {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def run_project(
    *,
    csv_path: Path,
    expected: int,
    sink: SmtpSink,
    redis: RedisService,
    database_url: str,
    mode: str,
    log_dir: Path,
    overrides: dict[str, str],
    timeout_s: float,
    profile_dir: Path | None = None,
) -> ProjectResult:
    description, concurrencies = WORKER_MODES[mode]
    queue_name = f"edm-bench-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        data_dir = stack.enter_context(scratch_dir("edm-bench-project-"))
        db_url = stack.enter_context(fresh_database(database_url, data_dir))
        stack.callback(delete_queue_keys, redis.url, queue_name)
        env = edm_environment(
            data_dir=data_dir,
            database_url=db_url,
            redis_url=redis.url,
            smtp_url=sink.url,
            queue_name=queue_name,
            overrides=overrides,
        )
        import_started = time.monotonic()
        import_list(env, csv_path, expected, timeout_s)
        campaign_id = create_campaign(env, f"Bench {mode}")
        import_s = time.monotonic() - import_started

        workers = start_workers(stack, env, mode, concurrencies, log_dir)
        groups = ProcessGroups(
            workers=[process.pid for process, _ in workers],
            sink_pid=sink.pid,
            redis_pid=redis.pid,
            database_name=make_url(db_url).database if db_url else None,
        )
        recorder = None
        if profile_dir is not None:
            recorder = PySpyRecorder(profile_dir / f"project-{mode}.txt")
            recorder.start(groups.workers)

        timing = send_campaign(
            env,
            campaign_id,
            sink,
            workers,
            groups,
            expected,
            log_dir / f"project-{mode}",
            timeout_s,
        )
        profile = None
        if recorder is not None:
            profile = recorder.stop(messages=expected, elapsed_s=timing.elapsed_s)
        received = timing.sink_received_after(sink)
        status = final_status(Settings.from_env(env), campaign_id)
        return ProjectResult(
            name=f"project, {description}",
            workers=mode,
            database="postgresql" if database_url else "sqlite",
            messages=expected,
            elapsed_s=timing.elapsed_s,
            messages_per_s=expected / timing.elapsed_s,
            schedule_command_s=timing.schedule_s,
            first_message_s=timing.first_message_s,
            import_s=import_s,
            sink_received=received,
            sent_in_database=status.counts.get("sent", 0),
            job_states={str(state): count for state, count in status.counts.items() if count},
            campaign_state=status.state,
            settings={key: value for key, value in env.items() if key.startswith("EDM_")}
            | {"EDM_DATABASE_URL": "postgresql (scratch)" if database_url else "sqlite (data dir)"},
            cpu=timing.cpu,
            profile=profile,
        )


def import_list(env: dict[str, str], csv_path: Path, expected: int, timeout_s: float) -> None:
    """``edm lists import`` into the list ``bench``; RuntimeError unless it took ``expected``."""
    report = run_edm_json(
        ["lists", "import", str(csv_path), "--list", "bench"], env, timeout_s=timeout_s
    )
    if report["imported"] != expected:
        raise RuntimeError(f"import: {report['imported']} recipients, expected {expected}")


def create_campaign(env: dict[str, str], name: str) -> int:
    """A draft campaign of the newsletter template to the list ``bench``; its id."""
    created = run_edm_json(
        [
            *("campaigns", "create", "--name", name, "--list", "bench"),
            *("--template", "newsletter", "--from", SENDER),
        ],
        env,
        timeout_s=60,
    )
    return int(created["id"])  # type: ignore[call-overload]


Workers = list[tuple[subprocess.Popen[bytes], Path]]


def start_workers(
    stack: ExitStack, env: dict[str, str], mode: str, concurrencies: list[int], log_dir: Path
) -> Workers:
    """Start the layout's ``edm worker`` processes and wait until Celery says each is ready,
    and each one's transactional lane (a Celery worker of its own, in the same log) too: its
    start-up would otherwise take CPU from the first seconds of the measurement."""
    ready_lines = 2 if Settings.from_env(env).tx_processes else 1
    workers: Workers = []
    for index, concurrency in enumerate(concurrencies):
        args = ["worker", f"--concurrency={concurrency}"]
        if index > 0:
            args.append("--no-dispatcher")
        log_path = log_dir / f"project-{mode}-worker{index}.log"
        process = start_logged(edm_command(*args), env=env, log_path=log_path)
        stack.callback(end_process, process)
        workers.append((process, log_path))
    for process, log_path in workers:
        wait_for_log_line(
            process,
            log_path,
            " ready.",
            timeout_s=WORKER_READY_TIMEOUT_S,
            occurrences=ready_lines,
        )
    return workers


@dataclass(frozen=True)
class ProcessGroups:
    """Which process is which, for CPU accounting: workers and everything they started, the
    sink, Redis, and PostgreSQL's backends for the scratch database."""

    workers: list[int]
    sink_pid: int | None
    redis_pid: int | None
    database_name: str | None

    def snapshot(self) -> cpu_usage.CpuSnapshot:
        roots = [*self.workers, *(pid for pid in (self.sink_pid, self.redis_pid) if pid)]
        if self.database_name:
            roots += cpu_usage.pids_with_command(f" {self.database_name} ")
        return cpu_usage.snapshot(roots, self.classify)

    def classify(self, pid: int, command: str) -> str | None:
        # PostgreSQL names the database in each backend's title: "postgres: ... edm_bench_x ...".
        if self.database_name and f" {self.database_name} " in command:
            return "postgresql backends"
        if pid == self.sink_pid:
            return "smtp sink"
        if pid == self.redis_pid:
            return "redis"
        if "dispatcher_loop" in command:
            return "dispatcher"
        if "workers.transactional_lane" in command:
            return "transactional lane"
        if pid in self.workers:
            return "celery main process"
        return "pool processes" if " -m edm worker" in command else command[:40]


@dataclass(frozen=True)
class Timing:
    base_count: int
    elapsed_s: float
    schedule_s: float
    first_message_s: float | None
    cpu: dict[str, object]

    def sink_received_after(self, sink: SmtpSink) -> int:
        """Messages the sink got in this run once it is quiet: more than sent means duplicates."""
        return sink.settle() - self.base_count


def send_campaign(
    env: dict[str, str],
    campaign_id: int,
    sink: SmtpSink,
    workers: Workers,
    groups: ProcessGroups,
    expected: int,
    log_prefix: Path,
    timeout_s: float,
    received: Callable[[], int] | None = None,
) -> Timing:
    """Run ``edm campaigns schedule ID --now`` and wait until the sink has every message.

    ``received`` counts the campaign's messages at the sink when others arrive there too
    (default: every message the sink has)."""
    received = received or (lambda: sink.count)
    schedule_log = log_prefix.with_name(f"{log_prefix.name}-schedule.log")
    cpu_before = groups.snapshot()
    base = received()
    started = time.monotonic()
    with schedule_log.open("wb") as schedule_output:
        schedule = subprocess.Popen(
            edm_command("campaigns", "schedule", str(campaign_id), "--now"),
            env=env,
            stdout=schedule_output,
            stderr=subprocess.STDOUT,
        )
    schedule_s: float | None = None
    schedule_cpu_s = 0.0
    first_s: float | None = None
    deadline = started + timeout_s
    while (now := time.monotonic()) < deadline:
        if schedule_s is None:
            # wait4 rather than poll: the command's own CPU time comes with its exit status.
            pid, status, usage = os.wait4(schedule.pid, os.WNOHANG)
            if pid:
                schedule_s = now - started
                schedule_cpu_s = usage.ru_utime + usage.ru_stime
                schedule.returncode = os.waitstatus_to_exitcode(status)
                if schedule.returncode != 0:
                    raise RuntimeError(f"edm campaigns schedule: {log_tail(schedule_log)}")
        count = received() - base
        if first_s is None and count > 0:
            first_s = now - started
        if count >= expected:
            break
        for process, log_path in workers:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited early: {log_tail(log_path)}")
        time.sleep(0.005)
    else:
        raise RuntimeError(
            f"the sink had {received() - base} of {expected} messages after {timeout_s:g} s "
            f"(logs in {log_prefix.parent})"
        )
    elapsed_s = now - started
    cpu_after = groups.snapshot()
    if schedule_s is None:
        schedule.wait()
        schedule_s = elapsed_s
    cpu = cpu_usage.cpu_per_message(
        cpu_before,
        cpu_after,
        messages=expected,
        elapsed_s=elapsed_s,
        extra={"schedule command": schedule_cpu_s},
    )
    return Timing(base, elapsed_s, schedule_s, first_s, cpu)


def final_status(settings: Settings, campaign_id: int) -> CampaignStatus:
    """The campaign's status once the dispatcher has marked it completed (or after 30 s)."""
    database = open_database(settings.resolved_database_url)
    try:
        status = campaign_status(database, campaign_id)
        deadline = time.monotonic() + 30
        while status.state != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = campaign_status(database, campaign_id)
        return status
    finally:
        database.dispose()
