"""Server-rendered pages: the Jinja environment (autoescaped), its filters, and one render call
that gives every page the signed-in user and their CSRF token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from dashboard.roles import Role, role_allows

PAGE_TEMPLATES_DIR = Path(__file__).resolve().parent / "page_templates"

templates = Jinja2Templates(directory=str(PAGE_TEMPLATES_DIR))
EMPTY = "\N{EN DASH}"


def _number(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _moment(value: datetime | None) -> str:
    if value is None:
        return EMPTY
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: datetime | float | None) -> str:
    if value is None:
        return "never"
    now = datetime.now(UTC)
    seconds = now.timestamp() - (value.timestamp() if isinstance(value, datetime) else value)
    if seconds < 2:
        return "just now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 129600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _percent(value: float | None) -> str:
    if value is None:
        return EMPTY
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


templates.env.filters["number"] = _number
templates.env.filters["moment"] = _moment
templates.env.filters["ago"] = _ago
templates.env.filters["percent"] = _percent


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    signed_in = getattr(request.state, "signed_in", None)
    page_context = {
        "user": signed_in.user if signed_in else None,
        "csrf_token": signed_in.csrf_token if signed_in else None,
        "can_edit": signed_in is not None and role_allows(signed_in.user.role, Role.EDITOR),
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, page_context, status_code=status_code)


def render_error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": message}, status_code=status)
