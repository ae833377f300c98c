"""Per-process resources built once after fork: an event loop, the database, the relays with
their SMTP pools and global limits, the DKIM signer."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from redis.asyncio import Redis

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from workers.celery_app import broker_url_from_env
from workers.delivery.batch import DeliveryContext

T = TypeVar("T")

REDIS_TIMEOUT_S = 5.0
"""A send waits at most this long for Redis to answer about its permit before handing back."""

_loop: asyncio.AbstractEventLoop | None = None
_context: DeliveryContext | None = None
_owner_pid: int | None = None


def _ensure_fresh_after_fork() -> None:
    # Loops, sockets and database connections must not cross a fork: rebuild them in the child.
    global _loop, _context, _owner_pid
    if _owner_pid != os.getpid():
        _loop = new_event_loop()
        _context = None
        _owner_pid = os.getpid()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (it costs a worker about a tenth less CPU per
    message than asyncio's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_on_process_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    _ensure_fresh_after_fork()
    assert _loop is not None
    return _loop.run_until_complete(coroutine)


def delivery_context() -> DeliveryContext:
    global _context
    _ensure_fresh_after_fork()
    if _context is None:
        settings = Settings.from_env()
        # The client connects lazily, on this process's loop, where every send runs.
        redis = Redis.from_url(
            settings.redis_url or broker_url_from_env(),
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        _context = DeliveryContext.from_settings(
            settings,
            database=Database(settings.resolved_database_url),
            redis=redis,
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )
    return _context
