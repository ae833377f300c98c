"""A costly template preview, through a real uvicorn server: refused with the limit and line,
while the server keeps answering everyone else."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.app import create_app
from dashboard.bearer_tokens import create_api_token
from dashboard.roles import Role
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, dashboard_settings

# No sandbox hook sees an empty loop: a billion passes that only the CPU-time limit stops.
ENDLESS_LOOPS = (
    "<p>Hello</p>\n{% set s = 'x' * 1000 %}\n"
    "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}\n"
)
_START_TIMEOUT_S = 30.0
_REQUEST_TIMEOUT_S = 120.0


@dataclass
class ServedDashboard:
    base_url: str
    headers: dict[str, str]


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[ServedDashboard]:
    settings = dashboard_settings(tmp_path, template_render_cpu_s=1.0)
    create_user(database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN)
    token = create_api_token(database, ADMIN_EMAIL)
    config = uvicorn.Config(
        create_app(settings, database=database), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        assert thread.is_alive(), "the dashboard stopped while starting"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield ServedDashboard(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"})
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)


def _preview(served: ServedDashboard, html: str) -> httpx.Response:
    return httpx.post(
        f"{served.base_url}/api/templates/preview",
        json={
            "source": {"subject": "Hi {{ first_name }}", "html": html, "text": None},
            "fields": {"email": "ann@example.com", "first_name": "Ann"},
        },
        headers=served.headers,
        timeout=_REQUEST_TIMEOUT_S,
    )


def test_a_costly_preview_is_refused_while_other_requests_are_answered(
    served: ServedDashboard,
) -> None:
    with ThreadPoolExecutor(max_workers=1) as background:
        costly = background.submit(_preview, served, ENDLESS_LOOPS)
        login_page = httpx.get(f"{served.base_url}/login", timeout=_REQUEST_TIMEOUT_S)
        ordinary = _preview(served, "<p>Hello {{ first_name }}</p>")
        refused = costly.result(timeout=_REQUEST_TIMEOUT_S)

    assert login_page.status_code == 200
    assert ordinary.status_code == 200, ordinary.text
    assert "Hello Ann" in ordinary.json()["html"]
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "unsaved/body.html:3: rendering took too long (limit 1 s of CPU)"
    )


def test_a_preview_over_a_sandbox_limit_is_a_400_naming_the_limit_and_line(
    served: ServedDashboard,
) -> None:
    refused = _preview(served, "<p>Hello</p>\n<p>{{ 'a' * 10 ** 9 }}</p>")

    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "unsaved/body.html:2: repeated text or list too long (limit 1000000)"
    )
