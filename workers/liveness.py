"""Who is at work on one installation's queue: workers online, the dispatcher, the queue's depth.

One place for what both sides agree on (the workers' node names; the keys are in
``redis_keys``), read by the dashboard's worker monitor and by ``edm status``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from workers.redis_keys import delivery_queue_key, dispatcher_lock_key

WORKER_HOSTNAME_PREFIX = "edm-"
"""``edm worker`` names its Celery node ``edm-<pid>@<host>``; other Celery apps are not ours."""
TRANSACTIONAL_HOSTNAME_PREFIX = f"tx-{WORKER_HOSTNAME_PREFIX}"
"""The transactional lane's node beside it: ``tx-edm-<pid>@<host>``."""


def worker_hostname(pid: int, host: str) -> str:
    return f"{WORKER_HOSTNAME_PREFIX}{pid}@{host}"


def transactional_queue_name(queue_name: str) -> str:
    """The transactional lane's queue beside the campaign queue ``queue_name``."""
    return f"{queue_name}.tx"


def is_transactional_lane(hostname: str) -> bool:
    return hostname.startswith(TRANSACTIONAL_HOSTNAME_PREFIX)


def is_our_worker(hostname: str, queues: Iterable[str] | None, queue_name: str) -> bool:
    """An ``edm worker`` (or its transactional lane) consuming ``queue_name`` (or its lane's
    queue); ``queues`` None (not known yet) counts as ours, since a worker named like ours most
    likely is."""
    if not (hostname.startswith(WORKER_HOSTNAME_PREFIX) or is_transactional_lane(hostname)):
        return False
    if queues is None:
        return True
    return bool({queue_name, transactional_queue_name(queue_name)} & set(queues))


def queue_depth(client: redis.Redis, queue_name: str) -> int:
    """Batches of job ids waiting in the broker for a worker."""
    return int(client.llen(delivery_queue_key(queue_name)))


def dispatcher_active(client: redis.Redis, namespace: str) -> bool:
    return bool(client.exists(dispatcher_lock_key(namespace)))


def workers_online(celery_app: Any, queue_name: str, *, timeout_s: float) -> list[str]:
    """Node names of our workers that answer within ``timeout_s`` (one broadcast)."""
    answers = celery_app.control.inspect(timeout=timeout_s).active_queues() or {}
    return sorted(
        hostname
        for hostname, queues in answers.items()
        if is_our_worker(hostname, [str(queue.get("name")) for queue in queues or []], queue_name)
    )
