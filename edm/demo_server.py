"""``edm demo --serve``: the dashboard on the demo's database, with an account made for it."""

from __future__ import annotations

import secrets
from dataclasses import replace

import uvicorn
from rich.console import Console

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.core.templates_location import TEMPLATES_FOLDER_NAME, copy_examples_once
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
    # Edits made in the dashboard go to the demo's own copy: the templates the demo sent from
    # (a checkout's, or the person's own in an installed copy) stay as they are.
    templates_dir = copy_examples_once(
        settings.resolved_templates_dir, settings.data_dir / TEMPLATES_FOLDER_NAME
    )
    # Without EDM_REDIS_URL the worker published its private Redis in the demo folder, where
    # the dashboard's monitor looks for it.
    app = build_dashboard(replace(settings, templates_dir=templates_dir), database=database)
    console.print()
    console.print(f"[bold]Dashboard:[/] http://localhost:{port}/  (Ctrl-C to stop)")
    console.print(f"  sign in as [bold]{DEMO_ACCOUNT}[/] with password [bold]{password}[/]")
    uvicorn.run(app, host="127.0.0.1", port=port, server_header=False, log_level="warning")
