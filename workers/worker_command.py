"""``edm worker``: check every service first, then run Celery and, beside it, the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

from campaigns.config import Settings
from workers.child_processes import die_with_parent_hook
from workers.embedded_redis import check_redis, redacted_url, resolve_redis_url
from workers.smtp_pool import SmtpPool
from workers.smtp_url import parse_smtp_url


def run_worker(settings: Settings, *, concurrency: int, dispatcher: bool) -> None:
    relay = parse_smtp_url(settings.smtp_url)
    # Fail at start, in one line, rather than defer every message to a relay that is not there.
    asyncio.run(_check_relay(settings))
    redis_url, embedded = resolve_redis_url(settings.redis_url, settings.data_dir)
    try:
        check_redis(redis_url)
        # Celery's app and the dispatcher read the broker URL from the environment.
        os.environ["EDM_REDIS_URL"] = redis_url
        print(
            f"edm worker: broker {redacted_url(redis_url)}, relay {relay.display()}, "
            f"{concurrency} processes",
            flush=True,
        )
        with _dispatcher_process(enabled=dispatcher):
            from workers.celery_app import app

            app.worker_main(
                [
                    "worker",
                    f"--concurrency={concurrency}",
                    "--pool=prefork",
                    f"--queues={settings.queue_name}",
                    f"--hostname=edm-{os.getpid()}@{socket.gethostname()}",
                    "--loglevel=INFO",
                    "--without-mingle",
                ]
            )
    finally:
        if embedded is not None:
            embedded.stop()


async def _check_relay(settings: Settings) -> None:
    pool = SmtpPool(
        parse_smtp_url(settings.smtp_url),
        size=1,
        timeout_s=min(settings.smtp_timeout_s, 10.0),
        data_timeout_s=settings.smtp_data_timeout_s,
    )
    try:
        await pool.check()
    finally:
        await pool.close()


@contextlib.contextmanager
def _dispatcher_process(*, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.dispatcher_loop"], preexec_fn=die_with_parent_hook()
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
