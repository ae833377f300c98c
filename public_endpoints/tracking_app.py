"""The tracking endpoints as an application of their own: what ``edm track`` serves."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from public_endpoints.access_log import uvicorn_log_config
from public_endpoints.body_limit import PUBLIC_ROUTE_LIMIT, RequestBodyLimit, public_body_limit
from public_endpoints.health import health_router
from public_endpoints.security_headers import add_security_headers
from public_endpoints.tracking import tracking_router


def create_tracking_app(settings: Settings, *, database: Database | None = None) -> FastAPI:
    """The open, click and unsubscribe routes and the health probes at the root, on the
    configured database unless ``database`` is given. Serve it at ``EDM_BASE_URL``: that is
    where the links point."""
    if database is None:
        database = open_database(settings.resolved_database_url)
    # No API documentation pages: this server faces every recipient on the internet.
    app = FastAPI(title="edm tracking", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(tracking_router(database, settings.secret))
    app.include_router(
        health_router(database, redis_url=settings.redis_url, data_dir=settings.data_dir)
    )
    # Every path here is public: one that is not a route still gets the tracking routes' bound.
    app.add_middleware(
        RequestBodyLimit,
        limit_for=lambda path: public_body_limit(path, settings) or PUBLIC_ROUTE_LIMIT,
    )
    add_security_headers(app)
    return app


def serve_tracking(settings: Settings, *, host: str, port: int) -> None:
    """Serve until interrupted (in production behind a proxy that ends TLS: links are https)."""
    uvicorn.run(
        create_tracking_app(settings),
        host=host,
        port=port,
        server_header=False,
        log_level="info",
        log_config=uvicorn_log_config(),
    )
