"""The Celery application. Messages carry batches of job ids; the database holds the truth."""

from __future__ import annotations

import os

from celery import Celery

from campaigns.config import Settings

# Generous: the longest task is one batch, bounded by the time limits below.
VISIBILITY_TIMEOUT_S = 3600
BATCH_TIME_LIMIT_S = 1800


def make_celery(settings: Settings, broker_url: str) -> Celery:
    app = Celery("edm", broker=broker_url, include=["workers.tasks"])
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_serializer="json",
        accept_content=["json"],
        # No result backend: outcomes are written to the job table, the only place anyone reads.
        task_ignore_result=True,
        # Ack after the batch ran, and requeue if the worker process dies mid-batch: a batch is
        # never lost, and a repeated one is harmless because claiming a job is atomic.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One batch at a time per process, so a busy process does not sit on batches others
        # could be sending.
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacked message after this; it must outlast the longest batch or
        # a slow batch would be handed to a second worker while the first still sends it.
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        task_time_limit=BATCH_TIME_LIMIT_S,
        task_soft_time_limit=BATCH_TIME_LIMIT_S - 60,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=False,
    )
    return app


def broker_url_from_env() -> str:
    """``edm worker`` resolves the Redis URL (maybe starting one) and exports it to children."""
    return os.environ.get("EDM_REDIS_URL") or "redis://127.0.0.1:6379/0"


app = make_celery(Settings.from_env(), broker_url_from_env())
