"""``edm status``: is this installation able to send? For people, and for systemd or Kubernetes
probes (exit 0 when all is well, else one line per problem on stderr)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field

import redis

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import campaigns_sending
from edm.command_helpers import print_json
from workers.celery_app import make_celery
from workers.embedded_redis import check_redis, known_redis_url, redacted_url
from workers.liveness import dispatcher_active, queue_depth, workers_online

EXIT_PROBLEMS = 1
REDIS_TIMEOUT_S = 2.0
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
    status = InstallationStatus()
    _read_database(settings, status)
    _read_redis(settings, status)
    return status


def _read_database(settings: Settings, status: InstallationStatus) -> None:
    # Not open_database: a probe reads, it never migrates the schema.
    database = Database(settings.resolved_database_url)
    try:
        database.ping()
        status.campaigns_sending = campaigns_sending(database)
    except ServiceUnavailable as error:
        status.database = str(error)
        status.problems.append(str(error))
    except Exception as error:
        status.database = f"database: {_one_line(error)}"
        status.problems.append(status.database)
    finally:
        database.dispose()


def _read_redis(settings: Settings, status: InstallationStatus) -> None:
    url = known_redis_url(settings.redis_url, settings.data_dir)
    if not url:
        status.redis = NO_REDIS
        status.problems.append(NO_REDIS)
        return
    status.redis_url = redacted_url(url)
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
            print(f"  {hostname}")
        print(f"dispatcher:        {'active' if status.dispatcher_active else 'none'}")
        print(f"queued batches:    {status.queue_depth}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
