"""``edm worker``: check every service first, then run Celery and, beside it, the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Iterator

from campaigns.content.dkim_keys import signer_from_settings
from campaigns.core.errors import ServiceUnavailable
from campaigns.core.settings import Settings
from workers.celery_app import app
from workers.child_processes import python_module_running
from workers.embedded_redis import check_redis, redacted_url, resolve_redis_url
from workers.liveness import worker_hostname
from workers.relays.config import RelayConfig, load_relay_config
from workers.smtp.pool import SmtpPool
from workers.transactional_lane import transactional_lane, transactional_queue


def run_worker(settings: Settings, *, concurrency: int, dispatcher: bool) -> None:
    relays = load_relay_config(settings).relays
    # Checked here, in one line: in the worker processes a bad key would stop all sending with
    # the reason only in their log.
    signer = signer_from_settings(settings)
    # Fail at start, in one line, rather than defer every message to a relay that is not there;
    # with several relays, only when none is there.
    asyncio.run(_check_relays(settings, relays))
    redis_url, embedded = resolve_redis_url(settings.redis_url, settings.data_dir)
    try:
        check_redis(redis_url)
        # Celery's app and the dispatcher read the broker URL from the environment.
        os.environ["EDM_REDIS_URL"] = redis_url
        signing = "unsigned"
        if signer is not None:
            signing = f"DKIM {signer.algorithm} d={signer.domain} s={signer.selector}"
        print(
            f"edm worker: broker {redacted_url(redis_url)}, {_describe_relays(relays)}, "
            f"{signing}, {concurrency} processes, {settings.tx_processes} transactional",
            flush=True,
        )
        with (
            _dispatcher_process(enabled=dispatcher),
            # Every worker delivers webhook events: endpoints are leased one deliverer at a time.
            python_module_running("workers.webhook_delivery", stop_timeout_s=10),
            transactional_lane(settings),
        ):
            # The app was made when this module was imported, maybe before the URL was known.
            app.conf["broker_url"] = redis_url
            app.worker_main(
                [
                    "worker",
                    f"--concurrency={concurrency}",
                    "--pool=prefork",
                    # Transactional first: with the ``priority`` queue order a free process
                    # takes one-to-one mail before the next campaign batch.
                    f"--queues={transactional_queue(settings)},{settings.queue_name}",
                    f"--hostname={worker_hostname(os.getpid(), socket.gethostname())}",
                    "--loglevel=INFO",
                    "--without-mingle",
                ]
            )
    finally:
        if embedded is not None:
            embedded.stop()


async def _check_relays(settings: Settings, relays: tuple[RelayConfig, ...]) -> None:
    results = await asyncio.gather(
        *(_check_relay(settings, relay) for relay in relays), return_exceptions=True
    )
    failures = [result for result in results if isinstance(result, BaseException)]
    for failure in failures:
        if not isinstance(failure, ServiceUnavailable):
            raise failure
    if len(failures) == len(relays):
        if len(failures) == 1:
            raise failures[0]
        raise ServiceUnavailable("no SMTP relay can be reached: " + "; ".join(map(str, failures)))
    for failure in failures:
        print(f"edm worker: warning: {failure}; sending through the others", file=sys.stderr)


def _describe_relays(relays: tuple[RelayConfig, ...]) -> str:
    if len(relays) == 1:
        return f"relay {relays[0].relay.display()}"
    named = ", ".join(f"{relay.name} ({relay.relay.display()})" for relay in relays)
    return f"relays {named}"


async def _check_relay(settings: Settings, relay: RelayConfig) -> None:
    pool = SmtpPool(
        relay.relay,
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
    with python_module_running("workers.dispatcher_loop", stop_timeout_s=10):
        yield
