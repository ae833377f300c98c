"""Runs the naive baseline: every message enqueued up front, then timed until the sink has all.

The worker starts on an empty private queue and is told to consume the full one (Celery's
``add_consumer``) once everything is enqueued, so neither enqueueing nor worker start-up is in
the time; the enqueueing time is reported beside it.
"""

from __future__ import annotations

import csv
import socket
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import cpu_usage
from bench.processes import end_process, log_tail, start_logged, wait_for_log_line
from bench.services import RedisService, delete_queue_keys
from bench.sinks import SmtpSink
from campaigns.lists.fields import EMAIL_FIELD, find_email_column, normalise_field_name

WORKER_PROCESSES = 2
READY_TIMEOUT_S = 60.0


@dataclass
class NaiveResult:
    name: str
    messages: int
    elapsed_s: float
    messages_per_s: float
    enqueue_s: float
    sink_received: int
    cpu: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def naive_recipients(csv_path: Path, valid_keys: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The same recipients the project sends to: each valid address once, first row wins."""
    wanted = set(valid_keys)
    recipients: list[tuple[str, dict[str, str]]] = []
    with csv_path.open(encoding="utf-8", newline="") as csv_file:
        reader = csv.reader(csv_file)
        names = [normalise_field_name(header) for header in next(reader)]
        email_index = find_email_column(names)
        names[email_index] = EMAIL_FIELD
        for values in reader:
            address = values[email_index].strip()
            key = address.lower()
            if key in wanted:
                wanted.discard(key)
                recipients.append((address, dict(zip(names, values, strict=True))))
    return recipients


def run_naive(
    *,
    recipients: list[tuple[str, dict[str, str]]],
    sink: SmtpSink,
    redis: RedisService,
    log_dir: Path,
    environment: dict[str, str],
    timeout_s: float,
) -> NaiveResult:
    from bench.naive_baseline import app, send_email

    app.conf.broker_url = redis.url
    run_id = uuid.uuid4().hex[:8]
    queue = f"naive-bench-{run_id}"
    idle_queue = f"naive-bench-idle-{run_id}"
    worker_name = f"naive-{run_id}@{socket.gethostname()}"
    expected = len(recipients)
    with ExitStack() as stack:
        stack.callback(delete_queue_keys, redis.url, queue, idle_queue)
        host, port = sink.address.rsplit(":", 1)
        env = {
            **environment,
            "NAIVE_BROKER_URL": redis.url,
            "NAIVE_SMTP_HOST": host,
            "NAIVE_SMTP_PORT": port,
        }
        command = [sys.executable, "-m", "celery", "-A", "bench.naive_baseline", "worker"]
        command += [f"-c{WORKER_PROCESSES}", "-Q", idle_queue, "-n", worker_name]
        command += ["--without-mingle", "--without-gossip", "--loglevel=INFO"]
        log_path = log_dir / "naive-worker.log"
        worker = start_logged(command, env=env, log_path=log_path)
        stack.callback(end_process, worker)
        wait_for_log_line(worker, log_path, " ready.", timeout_s=READY_TIMEOUT_S)

        enqueue_started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for address, fields in recipients:
                send_email.apply_async((address, fields), queue=queue, producer=producer)
        enqueue_s = time.monotonic() - enqueue_started

        roots = [worker.pid, *(pid for pid in (sink.pid, redis.pid) if pid is not None)]

        def classify(pid: int, command: str) -> str | None:
            if pid == sink.pid:
                return "smtp sink"
            if pid == redis.pid:
                return "redis"
            if pid == worker.pid:
                return "celery main process"
            return "pool processes" if "celery" in command else command[:40]

        cpu_before = cpu_usage.snapshot(roots, classify)
        base = sink.count
        started = time.monotonic()
        replies = app.control.add_consumer(queue, destination=[worker_name], reply=True, timeout=10)
        if not replies:
            raise RuntimeError(f"naive worker {worker_name} did not answer add_consumer")

        def worker_alive() -> None:
            if worker.poll() is not None:
                raise RuntimeError(f"naive worker exited early: {log_tail(log_path)}")

        finished_at = sink.wait_for(base + expected, timeout_s=timeout_s, alive=worker_alive)
        if finished_at is None:
            raise RuntimeError(
                f"naive baseline: the sink had {sink.count - base} of {expected} messages "
                f"after {timeout_s:g} s (log {log_path})"
            )
        elapsed_s = finished_at - started
        cpu = cpu_usage.cpu_per_message(
            cpu_before, cpu_usage.snapshot(roots, classify), messages=expected, elapsed_s=elapsed_s
        )
        received = sink.settle() - base
    return NaiveResult(
        name=f"naive: Celery task per email, smtplib, new connection, {WORKER_PROCESSES} processes",
        messages=expected,
        elapsed_s=elapsed_s,
        messages_per_s=expected / elapsed_s,
        enqueue_s=enqueue_s,
        sink_received=received,
        cpu=cpu,
    )
