"""The dashboard: web pages, the JSON API, metrics, and the public tracking and webhook routes,
all in one ASGI application (what ``edm serve`` runs)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from dashboard import (
    api_campaigns,
    api_lists,
    api_recipients,
    api_suppression,
    api_templates,
    api_transactional,
    api_users,
    api_webhooks,
    api_workers,
    auth_pages,
    metrics,
    pages_campaigns,
    pages_lists,
    pages_templates,
    pages_webhooks,
    pages_workers,
)
from dashboard.accounts import PASSWORD_HASHER
from dashboard.auth import RequireViewer, ViewerUser
from dashboard.background_imports import BackgroundImports
from dashboard.http_errors import install_error_handlers
from dashboard.page_rendering import render_error_page
from dashboard.roles import Role
from dashboard.sign_in_limits import SignInLimiter
from dashboard.ttl_cache import TtlCache
from public_endpoints.body_limit import BodyLimit, RequestBodyLimit, public_body_limit
from public_endpoints.health import health_router
from public_endpoints.security_headers import add_security_headers
from public_endpoints.tracking import tracking_router
from public_endpoints.webhooks import webhook_router


class AccountOut(BaseModel):
    email: str
    role: Role
    csrf_token: str | None
    """For a browser session: send as X-CSRF-Token with every POST, PUT and DELETE."""


STATIC_DIR = Path(__file__).resolve().parent / "static"
API_VERSION = "1"
CHART_CACHE_S = 8.0
"""Charts are polled every 10 s; over a million jobs they take a second to draw."""


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    monitor: Any = None,
    clock: Callable[[], float] = time.time,
    password_hasher: PasswordHasher = PASSWORD_HASHER,
) -> FastAPI:
    """The whole dashboard on ``database`` (default: the configured one).

    ``monitor`` watches the workers (default: a ``WorkerMonitor`` on the configured Redis,
    started with the app and stopped with it). ``clock`` (seconds since the epoch) times the
    waits between failed sign-ins; ``password_hasher`` checks sign-in passwords (tests pass a
    cheap one, since the default costs a fifth of a second per check).
    """
    if database is None:
        database = open_database(settings.resolved_database_url)
    imports = BackgroundImports(
        database,
        settings.data_dir / "uploads",
        secret=settings.secret,
        blocked_domains=settings.blocked_domain_set(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        imports.mark_interrupted()
        if monitor is not None:
            monitor.start()
        try:
            yield
        finally:
            if monitor is not None:
                monitor.stop()
            imports.shutdown()

    app = FastAPI(
        title="edm dashboard",
        version=API_VERSION,
        description=(
            "Drive and watch bulk email campaigns, and send one-to-one (transactional) mail "
            "with `POST /api/tx`: a marketing unsubscribe does not block the `transactional` "
            "category, hard bounces and complaints do. Authenticate with an API token from "
            "`edm users token --email E`, sent as `Authorization: Bearer <token>`."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.imports = imports
    app.state.monitor = monitor
    app.state.chart_cache = TtlCache(ttl_s=CHART_CACHE_S)
    app.state.sign_in_limiter = SignInLimiter(settings, clock=clock)
    app.state.password_hasher = password_hasher
    install_error_handlers(app, render_error_page)

    # Public: what recipients' mail clients, the email providers and health probes reach.
    app.include_router(tracking_router(database, settings.secret))
    app.include_router(webhook_router(settings, database), include_in_schema=False)
    app.include_router(
        health_router(database, redis_url=settings.redis_url, data_dir=settings.data_dir)
    )

    app.include_router(auth_pages.router)
    app.include_router(api_lists.router)
    app.include_router(api_recipients.router)
    app.include_router(api_suppression.router)
    app.include_router(api_campaigns.router)
    app.include_router(api_templates.router)
    app.include_router(api_transactional.router)
    app.include_router(api_workers.router)
    app.include_router(api_users.router)
    app.include_router(api_webhooks.router)
    app.include_router(metrics.router)
    app.include_router(pages_campaigns.router)
    app.include_router(pages_lists.router)
    app.include_router(pages_templates.router)
    app.include_router(pages_workers.router)
    app.include_router(pages_webhooks.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=[RequireViewer])
    def openapi_description() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/me", tags=["account"], summary="Who is signed in")
    def me(user: ViewerUser) -> AccountOut:
        return AccountOut(email=user.user.email, role=user.user.role, csrf_token=user.csrf_token)

    upload_limit = BodyLimit(
        settings.max_upload_bytes,
        "EDM_MAX_UPLOAD_BYTES",
        hint="import bigger files with `edm lists import`",
    )
    # JSON is parsed whole: a message's body is bounded by its attachments, not by uploads.
    transactional_limit = BodyLimit(
        settings.tx_max_attachment_bytes * 4 // 3 + 4 * 1024 * 1024,
        "EDM_TX_MAX_ATTACHMENT_BYTES (base64) plus 4 MiB",
    )

    def limit_for(path: str) -> BodyLimit:
        if path == api_transactional.router.prefix:
            return transactional_limit
        return public_body_limit(path, settings) or upload_limit

    app.add_middleware(
        RequestBodyLimit,
        limit_for=limit_for,
    )
    add_security_headers(app)
    return app
