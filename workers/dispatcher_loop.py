"""Runs the dispatcher forever, one active instance across every host (a lock in Redis).

Started by ``edm worker`` as a child process, or alone with ``python -m workers.dispatcher_loop``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence

import redis
from redis.exceptions import LockError, RedisError

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.dispatch import Dispatcher, DispatchLimits
from workers.celery_app import app, broker_url_from_env
from workers.child_processes import stop_event_on_signals
from workers.liveness import queue_depth
from workers.redis_keys import dispatcher_lock_key
from workers.tasks import DELIVER_BATCH
from workers.transactional_lane import publish_on

log = logging.getLogger("edm.dispatcher")

LOCK_TTL_S = 10.0
"""A dispatcher that dies hands over to another within this long."""


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    database = Database(settings.resolved_database_url)
    client = redis.Redis.from_url(broker_url_from_env(), socket_timeout=5)
    lock = client.lock(dispatcher_lock_key(settings.redis_namespace), timeout=LOCK_TTL_S)

    def publish(job_ids: Sequence[int]) -> None:
        app.send_task(DELIVER_BATCH, args=[list(job_ids)], queue=settings.queue_name)

    def publish_transactional(job_ids: Sequence[int]) -> None:
        publish_on(app, client, settings, job_ids)

    def queued_batches() -> int:
        return queue_depth(client, settings.queue_name)

    dispatcher = Dispatcher(
        database,
        publish=publish,
        publish_transactional=publish_transactional,
        queue_depth=queued_batches,
        limits=DispatchLimits(
            batch_size=settings.batch_size,
            max_queued_batches=settings.max_queued_batches,
            redispatch_after_s=settings.redispatch_after_s,
            retry_lost_in_transmission=settings.unknown_policy == "retry",
        ),
    )
    holding = False
    while not stop.is_set():
        try:
            holding = _hold_lock(lock, holding)
            if holding:
                result = dispatcher.run_once()
                if result.published_jobs or result.started_campaigns or result.completed_campaigns:
                    log.info("dispatch: %s", result)
        except RedisError as error:
            # Redis restarting is survivable: the database still knows what is pending.
            log.warning("dispatcher: Redis unavailable (%s); retrying", error)
            holding = False
        except Exception:
            log.exception("dispatcher pass failed; retrying")
        stop.wait(settings.dispatch_interval_s)
    if holding:
        with contextlib.suppress(LockError, RedisError):
            lock.release()
    database.dispose()


def _hold_lock(lock: redis.lock.Lock, holding: bool) -> bool:
    if holding:
        try:
            lock.reacquire()
            return True
        except LockError:
            log.warning("dispatcher lock lost; trying to take it again")
    return bool(lock.acquire(blocking=False))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = stop_event_on_signals()
    log.info("dispatcher started")
    run_dispatcher(Settings.from_env(), stop)


if __name__ == "__main__":
    main()
