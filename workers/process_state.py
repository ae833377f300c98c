"""Per-process resources built once after fork: an event loop, the database, the SMTP pool."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from campaigns.config import Settings
from campaigns.storage import Database
from workers.delivery import DeliveryContext
from workers.smtp_pool import SmtpPool
from workers.smtp_url import parse_smtp_url

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_context: DeliveryContext | None = None
_owner_pid: int | None = None


def _ensure_fresh_after_fork() -> None:
    # Loops, sockets and database connections must not cross a fork: rebuild them in the child.
    global _loop, _context, _owner_pid
    if _owner_pid != os.getpid():
        _loop = asyncio.new_event_loop()
        _context = None
        _owner_pid = os.getpid()


def run_on_process_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    _ensure_fresh_after_fork()
    assert _loop is not None
    return _loop.run_until_complete(coroutine)


def delivery_context() -> DeliveryContext:
    global _context
    _ensure_fresh_after_fork()
    if _context is None:
        settings = Settings.from_env()
        _context = DeliveryContext(
            settings=settings,
            database=Database(settings.resolved_database_url),
            pool=SmtpPool(
                parse_smtp_url(settings.smtp_url),
                size=settings.smtp_connections,
                timeout_s=settings.smtp_timeout_s,
                data_timeout_s=settings.smtp_data_timeout_s,
            ),
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )
    return _context
