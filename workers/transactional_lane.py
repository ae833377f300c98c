"""The transactional lane: a queue of its own for one-to-one mail, and processes that take
nothing else.

Campaign batches can keep every campaign process busy for minutes. A transactional message is
published on ``<queue>.tx`` the moment it is committed; ``edm worker`` runs
``EDM_TX_PROCESSES`` processes that consume only that queue, so it never waits for a batch to
end, and its campaign processes list it first with Redis's ``priority`` queue order, so they
take it before the next batch whenever they are free. Messages published close together go
out as one batch, and at most one task waits on that queue at a time
(:mod:`workers.transactional_pending`), so a campaign process takes at most one transactional
batch between two of its campaign's. Both lanes run the same task on the same
relays, limits and DKIM key. Started as ``python -m workers.transactional_lane``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Iterator, Sequence

import redis
from celery import Celery

from campaigns.core.settings import Settings
from workers.celery_app import app, make_celery
from workers.child_processes import python_module_running
from workers.embedded_redis import known_redis_url
from workers.liveness import TRANSACTIONAL_HOSTNAME_PREFIX
from workers.transactional_pending import publish_pending, transactional_queue

log = logging.getLogger("edm.transactional")

PUBLISH_TIMEOUT_S = 2.0
"""A request waits at most about this long for Redis: the message is committed already, and the
dispatcher publishes it again if this fails."""


def publish_on(
    celery: Celery, client: redis.Redis, settings: Settings, job_ids: Sequence[int]
) -> None:
    """Publish on the lane: the ids wait in Redis for a lane task that takes them in batches
    (:mod:`workers.transactional_pending`)."""
    publish_pending(celery, client, settings, job_ids)


def publisher_for(settings: Settings) -> functools.partial[None] | None:
    """What the API and ``edm send`` publish with; None when no Redis is known (no worker has
    started an embedded one yet), which leaves the message to the dispatcher."""
    url = known_redis_url(settings.redis_url, settings.data_dir)
    if not url:
        return None
    celery, client = _producer(url, settings)
    return functools.partial(publish_on, celery, client, settings)


_producers: dict[str, tuple[Celery, redis.Redis]] = {}
"""One per broker URL and process: their connection pools are reused by every request."""


def _producer(url: str, settings: Settings) -> tuple[Celery, redis.Redis]:
    if url in _producers:
        return _producers[url]
    producer = make_celery(settings, url)
    producer.conf.broker_connection_timeout = PUBLISH_TIMEOUT_S
    producer.conf.broker_transport_options = {
        **producer.conf.broker_transport_options,
        "socket_timeout": PUBLISH_TIMEOUT_S,
        "socket_connect_timeout": PUBLISH_TIMEOUT_S,
    }
    client = redis.Redis.from_url(
        url, socket_timeout=PUBLISH_TIMEOUT_S, socket_connect_timeout=PUBLISH_TIMEOUT_S
    )
    _producers[url] = (producer, client)
    return _producers[url]


def publish_or_leave(settings: Settings, job_ids: Sequence[int]) -> None:
    publish = publisher_for(settings)
    if publish is None:
        log.warning("no Redis known yet: the dispatcher will publish job(s) %s", list(job_ids))
        return
    publish(job_ids)


@contextlib.contextmanager
def transactional_lane(settings: Settings) -> Iterator[None]:
    """``EDM_TX_PROCESSES`` processes consuming only the transactional queue, while inside."""
    if settings.tx_processes == 0:
        yield
        return
    with python_module_running("workers.transactional_lane", stop_timeout_s=60):
        yield


def main() -> None:
    settings = Settings.from_env()
    # ``edm worker`` exported the broker's URL before starting this process.
    app.conf["broker_url"] = os.environ.get("EDM_REDIS_URL") or app.conf["broker_url"]
    app.worker_main(
        [
            "worker",
            f"--concurrency={settings.tx_processes}",
            "--pool=prefork",
            f"--queues={transactional_queue(settings)}",
            f"--hostname={TRANSACTIONAL_HOSTNAME_PREFIX}{os.getpid()}@{socket.gethostname()}",
            "--loglevel=INFO",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
