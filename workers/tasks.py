"""Celery tasks: thin wrappers that run the async delivery code on the process's own loop."""

from __future__ import annotations

import functools

import redis

from workers.celery_app import app, broker_url_from_env
from workers.delivery.batch import deliver_batch as deliver
from workers.process_state import delivery_context, run_on_process_loop
from workers.transactional_pending import DELIVER_TRANSACTIONAL, take_pending

DELIVER_BATCH = "edm.deliver_batch"


@app.task(name=DELIVER_BATCH)
def deliver_batch(job_ids: list[int]) -> None:
    context = delivery_context()
    run_on_process_loop(deliver(context, job_ids))


@app.task(name=DELIVER_TRANSACTIONAL)
def deliver_transactional() -> None:
    """The transactional jobs published since the last such task, as one batch."""
    context = delivery_context()
    job_ids = take_pending(app, _pending_client(context.settings.redis_url), context.settings)
    if job_ids:
        run_on_process_loop(deliver(context, job_ids))


@functools.cache
def _pending_client(redis_url: str) -> redis.Redis:
    # The broker's Redis, where publishers push the ids (the delivery context's client is async).
    return redis.Redis.from_url(redis_url or broker_url_from_env(), socket_timeout=5)
