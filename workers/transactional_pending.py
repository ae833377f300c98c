"""Transactional jobs wait in a Redis list, and one queued task at a time takes them in batches.

A task per message cost each message Celery's overhead and a claim of its own, and a backlog of
such tasks kept campaign processes (which list the transactional queue first) sending single
messages. So publishing pushes the job ids on a list and queues a task only when none is queued
already (``SET NX`` on a wake key); a task clears the key, then takes up to ``LANE_BATCH_JOBS``
ids and delivers them as one batch, queuing another task first if more are left. Clearing the
key before taking means an id pushed after the take finds the key free and queues a new task.

Nothing here is needed for correctness: claiming a job is atomic, so an id taken twice is sent
once, and a job whose id was lost (Redis restarted empty, a task lost after its take) is still
``queued`` and published again by the dispatcher once it is stale. The wake key expires, so a
task lost without Redis losing the key holds back new ones for ``WAKE_TTL_S`` at most.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from celery import Celery

from campaigns.core.settings import Settings
from workers.liveness import transactional_queue_name
from workers.redis_keys import transactional_pending_key, transactional_wake_key

DELIVER_TRANSACTIONAL = "edm.deliver_transactional"
LANE_BATCH_JOBS = 50
"""Jobs one task takes: a backlog goes out in batches, each sent over the pooled connections."""
WAKE_TTL_S = 10


def transactional_queue(settings: Settings) -> str:
    return transactional_queue_name(settings.queue_name)


def publish_pending(
    celery: Celery, client: redis.Redis, settings: Settings, job_ids: Sequence[int]
) -> None:
    """Add ``job_ids`` to the pending list and queue a task to take them unless one is queued."""
    namespace = settings.redis_namespace
    with client.pipeline(transaction=True) as pipeline:
        pipeline.rpush(transactional_pending_key(namespace), *job_ids)
        pipeline.set(transactional_wake_key(namespace), 1, nx=True, ex=WAKE_TTL_S)
        _, woken = pipeline.execute()
    if woken:
        _queue_task(celery, settings)


def take_pending(celery: Celery, client: redis.Redis, settings: Settings) -> list[int]:
    """Up to ``LANE_BATCH_JOBS`` pending ids, oldest first; another task is queued for the rest."""
    namespace = settings.redis_namespace
    pending = transactional_pending_key(namespace)
    wake = transactional_wake_key(namespace)
    client.delete(wake)
    with client.pipeline(transaction=True) as pipeline:
        pipeline.lpop(pending, LANE_BATCH_JOBS)
        pipeline.llen(pending)
        taken, left = pipeline.execute()
    if left and client.set(wake, 1, nx=True, ex=WAKE_TTL_S):
        _queue_task(celery, settings)
    return [int(job_id) for job_id in taken or ()]


def _queue_task(celery: Celery, settings: Settings) -> None:
    celery.send_task(DELIVER_TRANSACTIONAL, queue=transactional_queue(settings), retry=False)
