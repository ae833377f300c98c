"""Running the dashboard with uvicorn (``edm serve``)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from dashboard.app import create_app
from dashboard.worker_monitor import WorkerMonitor
from public_endpoints.access_log import uvicorn_log_config


def build_dashboard(settings: Settings, *, database: Database | None = None) -> FastAPI:
    """The app with its worker monitor on the configured (or published embedded) Redis."""

    database = database or open_database(settings.resolved_database_url)
    return create_app(settings, database=database, monitor=WorkerMonitor(settings, database))


def serve_dashboard(settings: Settings, *, host: str, port: int) -> None:
    app = build_dashboard(settings)
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(f"edm dashboard: http://{shown_host}:{port}/ (accounts: `edm users create`)", flush=True)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            server_header=False,
            log_level="info",
            log_config=uvicorn_log_config(),
        )
    except OSError as error:
        raise InputError(
            f"--host/--port: cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
