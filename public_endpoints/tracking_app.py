"""The tracking endpoints as an application of their own: what ``edm track`` serves."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from public_endpoints.access_log import uvicorn_log_config
from public_endpoints.body_limit import PUBLIC_ROUTE_LIMIT, RequestBodyLimit, public_body_limit
from public_endpoints.health import health_router
from public_endpoints.in_flight_limit import InFlightLimit
from public_endpoints.queued_answers import QueuedAnswers
from public_endpoints.security_headers import add_security_headers
from public_endpoints.server_processes import serve_in_processes
from public_endpoints.tracking import tracking_router
from public_endpoints.tracking_events import queued_events
from public_endpoints.tracking_fast_path import TrackingFastPath


def create_tracking_app(
    settings: Settings, *, database: Database | None = None, queue_events: bool = True
) -> FastAPI:
    """The open, click and unsubscribe routes and the health probes at the root, on the
    configured database unless ``database`` is given. Serve it at ``EDM_BASE_URL``: that is
    where the links point.

    Opens and clicks go through the Redis stream of ``public_endpoints.tracking_events`` when
    there is a Redis and ``queue_events``; else each is written before its answer.
    """
    if database is None:
        database = open_database(settings.resolved_database_url)
    queued = queued_events(settings, database) if queue_events else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if queued is not None:
            queued.start()
        try:
            yield
        finally:
            if queued is not None:
                await queued.stop()

    # No API documentation pages: this server faces every recipient on the internet.
    app = FastAPI(
        title="edm tracking", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    answers = QueuedAnswers(database, queued.queue) if queued else None
    app.include_router(tracking_router(database, settings.secret, answers))
    app.include_router(
        health_router(database, redis_url=settings.redis_url, data_dir=settings.data_dir)
    )
    # Every path here is public: one that is not a route still gets the tracking routes' bound.
    app.add_middleware(
        RequestBodyLimit,
        limit_for=lambda path: public_body_limit(path, settings) or PUBLIC_ROUTE_LIMIT,
    )
    add_security_headers(app)
    if answers is not None:
        app.add_middleware(TrackingFastPath, secret=settings.secret, answers=answers)
    # Outermost: a refused pixel costs no other middleware's work.
    app.add_middleware(InFlightLimit, max_in_flight=settings.tracking_max_in_flight)
    return app


def serve_tracking(
    settings: Settings, *, host: str, port: int, workers: int = 1, queue_events: bool = True
) -> None:
    """Serve until interrupted (in production behind a proxy that ends TLS: links are https),
    in ``workers`` processes that share the port."""

    def serve(sockets: list[socket.socket] | None) -> None:
        config = uvicorn.Config(
            create_tracking_app(settings, queue_events=queue_events),
            host=host,
            port=port,
            server_header=False,
            log_level="info",
            log_config=uvicorn_log_config(),
        )
        uvicorn.Server(config).run(sockets=sockets)

    if workers == 1:
        serve(None)
        return
    # Migrated once here: processes that each found the schema old would race to upgrade it.
    open_database(settings.resolved_database_url).dispose()
    serve_in_processes(serve, host=host, port=port, processes=workers)
