"""``edm demo --serve``: the dashboard on the demo's database, with an account made for it."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import replace

import uvicorn
from rich.console import Console

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.roles import Role
from dashboard.server import build_dashboard

DEMO_ACCOUNT = "demo@example.com"


def serve_demo_dashboard(
    console: Console, settings: Settings, database: Database, *, port: int
) -> None:
    """Serve until Ctrl-C; the demo's worker and capture server keep running meanwhile."""

    password = secrets.token_urlsafe(12)
    create_user(database, DEMO_ACCOUNT, password, role=Role.ADMIN)
    # Edits made in the dashboard go to a copy: the shipped examples stay as they are.
    templates_dir = settings.data_dir / "templates"
    shutil.copytree(settings.templates_dir, templates_dir, dirs_exist_ok=True)
    # Without EDM_REDIS_URL the worker published its private Redis in the demo folder, where
    # the dashboard's monitor looks for it.
    app = build_dashboard(replace(settings, templates_dir=templates_dir), database=database)
    console.print()
    console.print(f"[bold]Dashboard:[/] http://localhost:{port}/  (Ctrl-C to stop)")
    console.print(f"  sign in as [bold]{DEMO_ACCOUNT}[/] with password [bold]{password}[/]")
    uvicorn.run(app, host="127.0.0.1", port=port, server_header=False, log_level="warning")
