"""``edm status``: is this installation able to send? For people, and for systemd or Kubernetes
probes (exit 0 when all is well, else one line per problem on stderr)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import redis

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import campaigns_sending
from edm.command_helpers import print_json
from workers.celery_app import make_celery
from workers.embedded_redis import check_redis, known_redis_url, redacted_url
from workers.liveness import (
    dispatcher_active,
    is_transactional_lane,
    queue_depth,
    workers_online,
)

EXIT_PROBLEMS = 1
DATABASE_TIMEOUT_S = 3.0
"""For the query; the connection attempt has storage.POSTGRES_CONNECT_TIMEOUT_S."""
DATABASE_DEADLINE_S = 5.0
"""The whole database check, connecting included: a server that accepts and never answers
must not hold a probe that systemd or Kubernetes is waiting on."""
REDIS_TIMEOUT_S = 2.0
REDIS_DEADLINE_S = 8.0
"""The whole Redis check: PING, two reads and the broadcast to the workers."""
INSPECT_TIMEOUT_S = 1.0
"""Workers answer a broadcast within milliseconds; one second leaves room for a loaded host."""
NO_REDIS = "Redis: none configured (EDM_REDIS_URL) and no worker published one (start `edm worker`)"


@dataclass
class InstallationStatus:
    database: str = "ok"
    """"ok", or why the database does not answer."""
    campaigns_sending: int | None = None
    redis: str = "ok"
    redis_url: str = ""
    """Without its password."""
    workers_online: list[str] = field(default_factory=list)
    dispatcher_active: bool | None = None
    queue_depth: int | None = None
    """Batches of job ids waiting in the broker."""
    problems: list[str] = field(default_factory=list)


def run(args: argparse.Namespace, settings: Settings) -> None:
    status = installation_status(settings)
    if args.json:
        print_json(asdict(status))
    else:
        _print_status(status)
    if status.problems:
        for problem in status.problems:
            print(f"edm status: {problem}", file=sys.stderr)
        sys.exit(EXIT_PROBLEMS)


def installation_status(settings: Settings) -> InstallationStatus:
    """Database and Redis are read side by side, each within its deadline."""
    # Not open_database: a probe reads, it never migrates the schema.
    database = Database(settings.resolved_database_url)
    database_part = InstallationStatus()
    redis_part = InstallationStatus()
    redis_url = known_redis_url(settings.redis_url, settings.data_dir)
    redis_part.redis_url = redacted_url(redis_url)
    started_at = time.monotonic()
    database_reader = _started(lambda: _read_database(database, database_part))
    redis_reader = _started(lambda: _read_redis(settings, redis_url, redis_part))
    if not _finished(database_reader, started_at + DATABASE_DEADLINE_S):
        where = f"database {database.engine.url!r}"
        database_part = InstallationStatus(database=_no_answer(where, DATABASE_DEADLINE_S))
        database_part.problems.append(database_part.database)
    if not _finished(redis_reader, started_at + REDIS_DEADLINE_S):
        where = f"Redis at {redis_part.redis_url}"
        redis_part = InstallationStatus(
            redis=_no_answer(where, REDIS_DEADLINE_S), redis_url=redis_part.redis_url
        )
        redis_part.problems.append(redis_part.redis)
    return InstallationStatus(
        database=database_part.database,
        campaigns_sending=database_part.campaigns_sending,
        redis=redis_part.redis,
        redis_url=redis_part.redis_url,
        workers_online=redis_part.workers_online,
        dispatcher_active=redis_part.dispatcher_active,
        queue_depth=redis_part.queue_depth,
        problems=[*database_part.problems, *redis_part.problems],
    )


def _started(read: Callable[[], None]) -> threading.Thread:
    # A daemon thread: a check still hung when the deadline passes does not keep the process.
    reader = threading.Thread(target=read, name="edm-status", daemon=True)
    reader.start()
    return reader


def _finished(reader: threading.Thread, deadline: float) -> bool:
    """Whether ``reader`` ended by ``deadline`` (a ``time.monotonic()`` value)."""
    reader.join(max(0.0, deadline - time.monotonic()))
    return not reader.is_alive()


def _no_answer(what: str, deadline_s: float) -> str:
    return f"{what}: no answer within {deadline_s:g}s"


def _read_database(database: Database, status: InstallationStatus) -> None:
    try:
        database.ping(statement_timeout_s=DATABASE_TIMEOUT_S)
        status.campaigns_sending = campaigns_sending(database)
    except ServiceUnavailable as error:
        status.database = str(error)
        status.problems.append(str(error))
    except Exception as error:
        status.database = f"database: {_one_line(error)}"
        status.problems.append(status.database)
    finally:
        database.dispose()


def _read_redis(settings: Settings, url: str, status: InstallationStatus) -> None:
    if not url:
        status.redis = NO_REDIS
        status.problems.append(NO_REDIS)
        return
    try:
        check_redis(url, timeout_s=REDIS_TIMEOUT_S)
        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        try:
            status.queue_depth = queue_depth(client, settings.queue_name)
            status.dispatcher_active = dispatcher_active(client, settings.redis_namespace)
        finally:
            client.close()
        celery_app = make_celery(settings, url)
        try:
            status.workers_online = workers_online(
                celery_app, settings.queue_name, timeout_s=INSPECT_TIMEOUT_S
            )
        finally:
            celery_app.close()
    except ServiceUnavailable as error:
        status.redis = str(error)
        status.problems.append(str(error))
        return
    except (redis.RedisError, OSError) as error:
        status.redis = f"Redis at {status.redis_url}: {_one_line(error)}"
        status.problems.append(status.redis)
        return
    if not status.workers_online:
        status.problems.append(
            f"no worker online on queue {settings.queue_name} (start one with `edm worker`)"
        )
    if not status.dispatcher_active:
        status.problems.append(
            f"no dispatcher active for queue {settings.queue_name} "
            "(`edm worker` runs one unless --no-dispatcher)"
        )


def _print_status(status: InstallationStatus) -> None:
    print(f"database:          {status.database}")
    if status.campaigns_sending is not None:
        print(f"campaigns sending: {status.campaigns_sending}")
    redis_where = f" ({status.redis_url})" if status.redis_url and status.redis == "ok" else ""
    print(f"redis:             {status.redis}{redis_where}")
    if status.redis == "ok":
        print(f"workers online:    {len(status.workers_online)}")
        for hostname in status.workers_online:
            lane = " (transactional lane)" if is_transactional_lane(hostname) else ""
            print(f"  {hostname}{lane}")
        print(f"dispatcher:        {'active' if status.dispatcher_active else 'none'}")
        print(f"queued batches:    {status.queue_depth}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
