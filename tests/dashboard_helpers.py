"""The dashboard on a test database: an account, an API token, and a client that uses them."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from campaigns.core.settings import PROJECT_ROOT, Settings
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.app import create_app
from dashboard.bearer_tokens import create_api_token
from dashboard.roles import Role

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
FAST_PASSWORD_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""argon2id at its cheapest: what is tested is who may sign in, not the cost of guessing, and the
production default spends a fifth of a second on every hash and every check."""
SAMPLE_CSV = (
    "email,first_name,city,plan\n"
    "ann@example.com,Ann,Lisbon,pro\n"
    "bob@example.com,Bob,Oslo,free\n"
    "not-an-address,Carl,Rome,free\n"
    "ANN@example.com,Ann,Porto,pro\n"
    "dee@example.org,Dee,Quito,free\n"
)


@dataclass
class Dashboard:
    client: TestClient
    database: Database
    settings: Settings
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.bearer, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=self.bearer, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.client.put(url, headers=self.bearer, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.client.delete(url, headers=self.bearer, **kwargs)

    def import_csv(self, text: str, list_name: str, *, name: str = "people.csv") -> dict:
        """Upload and wait for the background import; its final state."""
        answer = self.post(
            "/api/imports",
            files={"file": (name, text.encode(), "text/csv")},
            data={"list": list_name},
        )
        assert answer.status_code == 202, answer.text
        return self.wait_import(answer.json()["id"])

    def wait_import(self, import_id: int, timeout_s: float = 60) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.get(f"/api/imports/{import_id}").json()
            if state["state"] in ("done", "failed") or time.monotonic() > deadline:
                return state
            time.sleep(0.05)


def draft_campaign(dashboard: Dashboard, *, from_address: str = "news@example.com") -> int:
    """A draft campaign of the newsletter template to a freshly imported list ``people``."""
    dashboard.import_csv(SAMPLE_CSV, "people")
    answer = dashboard.post(
        "/api/campaigns",
        json={
            "name": "Spring",
            "list": "people",
            "template": "newsletter",
            "from_address": from_address,
        },
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["campaign"]["id"])


def dashboard_settings(tmp_path: Path, **overrides: Any) -> Settings:
    templates_dir = tmp_path / "templates"
    if not templates_dir.exists():
        shutil.copytree(PROJECT_ROOT / "templates", templates_dir)
    return replace(
        Settings(
            data_dir=tmp_path / "data",
            secret_key="test-secret",
            base_url="https://mail.example.test",
            templates_dir=templates_dir,
        ),
        **overrides,
    )


@contextmanager
def running_dashboard(
    database: Database, settings: Settings, *, monitor: Any = None
) -> Iterator[Dashboard]:
    create_user(database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN, hasher=FAST_PASSWORD_HASHER)
    token = create_api_token(database, ADMIN_EMAIL)
    app = create_app(
        settings, database=database, monitor=monitor, password_hasher=FAST_PASSWORD_HASHER
    )
    with TestClient(app, base_url="http://dashboard.test") as client:
        yield Dashboard(client, database, settings, token)


def sign_in(client: TestClient, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token (from a page)."""
    form = client.get("/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client.get("/api/me").json()["csrf_token"]
