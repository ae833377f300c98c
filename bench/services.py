"""Redis and databases for a benchmark run: shared Redis, one fresh database per measurement."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

from campaigns.core.settings import normalise_database_url
from workers.embedded_redis import EmbeddedRedis, check_redis, redacted_url
from workers.redis_keys import delivery_queue_key, delivery_queue_key_patterns, namespace_pattern


@dataclass(frozen=True)
class RedisService:
    url: str
    description: str
    pid: int | None
    """The server's process when the benchmark started it, for CPU accounting."""


@contextlib.contextmanager
def bench_redis(work_dir: Path) -> Iterator[RedisService]:
    """``EDM_REDIS_URL`` when set, else a private embedded Redis."""
    configured = os.environ.get("EDM_REDIS_URL", "")
    if configured:
        check_redis(configured)
        yield RedisService(configured, f"EDM_REDIS_URL ({redacted_url(configured)})", None)
        return
    with EmbeddedRedis(work_dir / "redis") as server:
        description = f"embedded redis-server (workers.embedded_redis) at {server.url}"
        yield RedisService(server.url, description, server.pid)


def delete_queue_keys(redis_url: str, *queue_names: str) -> None:
    """Remove what a run left in Redis for its private queues: the list, its binding set, and
    the keys the project prefixes with the queue name (dispatcher lock, rate limits)."""
    client = redis.Redis.from_url(redis_url)
    try:
        for name in queue_names:
            client.delete(delivery_queue_key(name))
            for pattern in (*delivery_queue_key_patterns(name), namespace_pattern(name)):
                for key in client.scan_iter(match=pattern):
                    client.delete(key)
    finally:
        client.close()


@contextlib.contextmanager
def fresh_database(database_url: str, data_dir: Path) -> Iterator[str]:
    """An empty database: a SQLite file in ``data_dir`` (empty URL), or a scratch PostgreSQL
    database created beside the one ``database_url`` names and dropped afterwards."""
    if not database_url:
        yield ""
        return
    url = make_url(normalise_database_url(database_url))
    if not url.drivername.startswith("postgresql"):
        raise ValueError(f"--database-url: only postgresql:// is supported, got {database_url!r}")
    admin_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"edm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_dir(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def edm_environment(
    *,
    data_dir: Path,
    database_url: str,
    redis_url: str,
    smtp_url: str,
    queue_name: str,
    overrides: dict[str, str],
) -> dict[str, str]:
    """Environment for ``edm`` subprocesses: the caller's EDM_* settings are dropped so a
    stray one cannot point the benchmark at a real database or relay."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(data_dir),
        EDM_REDIS_URL=redis_url,
        EDM_SMTP_URL=smtp_url,
        EDM_QUEUE_NAME=queue_name,
        EDM_SECRET_KEY="bench-secret",
        EDM_BASE_URL="https://mail.bench.example",
    )
    if database_url:
        environment["EDM_DATABASE_URL"] = database_url
    environment.update(overrides)
    return environment
