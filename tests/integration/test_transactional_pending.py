"""Transactional jobs published close together wait in Redis for one task, taken in batches."""

from __future__ import annotations

import uuid

import redis

from campaigns.core.settings import Settings
from workers.celery_app import make_celery
from workers.liveness import queue_depth
from workers.transactional_pending import (
    LANE_BATCH_JOBS,
    publish_pending,
    take_pending,
    transactional_queue,
)


def _settings() -> Settings:
    return Settings.from_env({"EDM_QUEUE_NAME": f"pending-{uuid.uuid4().hex[:8]}"})


def _forget(client: redis.Redis, settings: Settings) -> None:
    queue = transactional_queue(settings)
    client.delete(*client.keys(f"{settings.queue_name}*"), *client.keys(f"_kombu.binding*{queue}"))


def test_messages_published_together_queue_one_task_that_takes_them_all(redis_url: str) -> None:
    settings = _settings()
    client = redis.Redis.from_url(redis_url)
    celery = make_celery(settings, redis_url)
    queue = transactional_queue(settings)

    for job_id in range(1, 6):
        publish_pending(celery, client, settings, [job_id])

    assert queue_depth(client, queue) == 1
    assert take_pending(celery, client, settings) == [1, 2, 3, 4, 5]
    assert queue_depth(client, queue) == 1  # nothing more was queued
    # Published after the take: the key was cleared first, so a new task is queued.
    publish_pending(celery, client, settings, [6])
    assert queue_depth(client, queue) == 2
    _forget(client, settings)


def test_a_backlog_is_taken_in_bounded_batches_each_queuing_the_next(redis_url: str) -> None:
    settings = _settings()
    client = redis.Redis.from_url(redis_url)
    celery = make_celery(settings, redis_url)
    queue = transactional_queue(settings)
    job_ids = list(range(1, LANE_BATCH_JOBS + 11))
    publish_pending(celery, client, settings, job_ids)

    first = take_pending(celery, client, settings)
    assert queue_depth(client, queue) == 2  # the first task's and the one for the rest
    second = take_pending(celery, client, settings)

    assert first == job_ids[:LANE_BATCH_JOBS] and second == job_ids[LANE_BATCH_JOBS:]
    assert take_pending(celery, client, settings) == []
    assert queue_depth(client, queue) == 2
    _forget(client, settings)
