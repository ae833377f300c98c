"""``/healthz`` and ``/readyz``: for load balancers, systemd and Kubernetes probes.

Both answer without signing in, so they say nothing but which service fails: no versions, URLs,
hosts or error texts (those go to the log). Each check runs in a thread of its own pool, so a
database or Redis that hangs never blocks the event loop, and the answer comes within
``CHECK_TIMEOUT_S`` however long the check hangs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.storage import Database
from workers.embedded_redis import check_redis, known_redis_url

log = logging.getLogger("edm.health")

CHECK_TIMEOUT_S = 1.5
"""A service that has not answered by then counts as down."""
NO_CACHE = {"Cache-Control": "no-store"}
HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
HEALTH_PATHS = (HEALTHZ_PATH, READYZ_PATH)


class BoundedCheck:
    """A blocking check run in a thread, awaited at most ``timeout_s``.

    While a hung check is still running, the next probe waits on it instead of starting
    another, so a dead service holds at most one thread per check.
    """

    def __init__(
        self,
        name: str,
        check: Callable[[], None],
        executor: concurrent.futures.Executor,
        *,
        timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self.name = name
        self._check = check
        self._executor = executor
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._running: concurrent.futures.Future[None] | None = None

    async def passes(self) -> bool:
        with self._lock:
            if self._running is None or self._running.done():
                self._running = self._executor.submit(self._check)
            running = self._running
        waiting = asyncio.wrap_future(running)
        # asyncio.wait, not wait_for: the check is left to finish, never cancelled.
        done, _ = await asyncio.wait({waiting}, timeout=self._timeout_s)
        if not done:
            waiting.add_done_callback(_retrieve_outcome)
            log.warning("readiness: %s did not answer within %g s", self.name, self._timeout_s)
            return False
        error = waiting.exception()
        if error is not None:
            log.warning("readiness: %s", error)
            return False
        return True


def health_router(database: Database, *, redis_url: str, data_dir: Path) -> APIRouter:
    """``redis_url`` is the configured one (may be empty); without it, the Redis a worker of the
    installation in ``data_dir`` published is checked, and with neither only the database."""
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="edm-health")
    database_check = BoundedCheck(
        "database", lambda: database.ping(statement_timeout_s=CHECK_TIMEOUT_S), executor
    )
    redis_checks: dict[str, BoundedCheck] = {}
    router = APIRouter(include_in_schema=False)

    def redis_check() -> BoundedCheck | None:
        url = known_redis_url(redis_url, data_dir)
        if not url:
            return None
        # One per URL: an embedded Redis restarted by a worker is published on a new port.
        if url not in redis_checks:
            redis_checks.clear()
            redis_checks[url] = BoundedCheck(
                "redis", lambda: check_redis(url, timeout_s=CHECK_TIMEOUT_S), executor
            )
        return redis_checks[url]

    @router.get(HEALTHZ_PATH)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=NO_CACHE)

    @router.get(READYZ_PATH)
    async def readyz() -> JSONResponse:
        checks = [check for check in (database_check, redis_check()) if check is not None]
        outcomes = await asyncio.gather(*(check.passes() for check in checks))
        failing = [check.name for check, passed in zip(checks, outcomes, strict=True) if not passed]
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": failing}, status_code=503, headers=NO_CACHE
            )
        return JSONResponse({"status": "ok"}, headers=NO_CACHE)

    return router


def _retrieve_outcome(future: asyncio.Future[None]) -> None:
    # Marks a late failure as seen, so asyncio does not log it as never retrieved.
    if not future.cancelled():
        error = future.exception()
        if error is not None and not isinstance(error, ServiceUnavailable):
            log.warning("readiness check failed late: %s", error)
