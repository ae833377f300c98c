"""The Celery application. Messages carry batches of job ids; the database holds the truth."""

from __future__ import annotations

import os
import signal
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from campaigns.core.settings import Settings

BATCH_TIME_LIMIT_S = 3600
"""A last resort against a wedged process, never meant to end a working batch: the pool kills
the process with SIGKILL, and every message then in flight may be sent twice. A batch starts no
send after delivery.SEND_WINDOW_S (20 min); its last send may take the SMTP timeouts (up to about
7 commands x 60 s, plus 600 s for the reply to the final '.') and the outcome write its retries
(2 min): about 39 min, well inside this."""
VISIBILITY_TIMEOUT_S = 2 * BATCH_TIME_LIMIT_S
"""Redis hands an unacked message to another worker after this. That is harmless (claims are
atomic) but useless while the first worker still runs it, so it outlasts the time limit; a
message lost with a dead worker needs no redelivery either: the dispatcher publishes its jobs
again from the database (EDM_REDISPATCH_AFTER_S, or once their lease runs out)."""


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
        # "priority": a worker reads its queues in the order given (the transactional queue
        # first) instead of Redis's default round robin.
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "queue_order_strategy": "priority",
        },
        task_time_limit=BATCH_TIME_LIMIT_S,
        # No soft time limit: it raises inside the event loop wherever it happens to be, which
        # can hand back jobs whose messages are still being sent, or leave a half-run batch on
        # the loop to resume inside the next task, after its leases ran out.
        task_soft_time_limit=None,
        # Losing the broker must not stop a running batch (Celery's option would terminate its
        # process mid-send); the batch finishes and records every outcome, and its ack, lost
        # with the connection, only means a redelivered copy that finds nothing to claim.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=False,
    )
    return app


@worker_process_init.connect
def _outlive_sigterm_to_the_whole_group(**_kwargs: Any) -> None:
    """Pool processes ignore SIGTERM; the main process's warm shutdown lets them finish.

    systemd (KillMode=control-group, its default) and ``kill -TERM -PGID`` signal every process
    of the worker at once. A pool process dying of it mid-batch would leave its messages on the
    wire unrecorded, to be sent again (tests/faults/test_faults.py measures this).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def broker_url_from_env() -> str:
    """``edm worker`` resolves the Redis URL (maybe starting one) and exports it to children."""
    return os.environ.get("EDM_REDIS_URL") or "redis://127.0.0.1:6379/0"


app = make_celery(Settings.from_env(), broker_url_from_env())
