"""Failed sign-ins limited per account and per client address, in a real Redis shared by every
dashboard process, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import logging
import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.app import create_app
from dashboard.roles import Role
from tests.conftest import wait_until
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, dashboard_settings

OTHER_EMAIL = "other@example.com"
OTHER_PASSWORD = "another good password"
BASE_URL = "http://dashboard.test"


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    # A queue of its own: counts of other tests in the same Redis never reach this one.
    return dashboard_settings(
        tmp_path, redis_url=redis_url, queue_name=f"edm-test-{uuid.uuid4().hex[:8]}"
    )


@pytest.fixture
def accounts(database: Database) -> Database:
    create_user(database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN)
    create_user(database, OTHER_EMAIL, OTHER_PASSWORD, role=Role.ADMIN)
    return database


def _browser(app: Any, address: str) -> TestClient:
    return TestClient(app, base_url=BASE_URL, client=(address, 50000))


def _sign_in(client: TestClient, email: str, password: str) -> Any:
    form = client.get("/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )


def _refusal(answer: Any) -> str:
    assert answer.status_code == 429, answer.text
    assert "Traceback" not in answer.text
    assert "edm_session" not in answer.headers.get("set-cookie", "")
    message = re.search(r'<div class="error-box" role="alert">(.*?)</div>', answer.text)
    assert message is not None, answer.text
    return html.unescape(message[1])


def test_the_eleventh_attempt_is_refused_even_with_the_right_password_in_every_process(
    accounts: Database, settings: Settings
) -> None:
    # Long enough for eleven argon2 checks on a busy machine, short enough to wait out.
    settings = replace(settings, login_failure_window_s=20.0)
    first_process = create_app(settings, database=accounts)
    second_process = create_app(settings, database=accounts)
    guesser = _browser(first_process, "192.0.2.1")
    for _ in range(10):
        assert _sign_in(guesser, ADMIN_EMAIL, "wrong password").status_code == 401

    owner = _browser(second_process, "198.51.100.7")
    refused = _sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD)
    message = _refusal(refused)
    assert re.fullmatch(
        r"Too many failed sign-ins for this account: try again in \d+ seconds "
        r"\(after \d\d:\d\d UTC\)\.",
        message,
    ), message
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    # Typed the way a person might: still the same account.
    _refusal(_sign_in(owner, " Admin@Example.com", ADMIN_PASSWORD))

    assert _sign_in(owner, OTHER_EMAIL, OTHER_PASSWORD).status_code == 303

    # Once the window that began with the first failure has passed, the password works again
    # (tried from fresh addresses, so only the account's count is in the way).
    addresses = (f"203.0.113.{number}" for number in range(1, 255))

    def signs_in() -> bool:
        browser = _browser(second_process, next(addresses))
        return _sign_in(browser, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303

    assert wait_until(signs_in, timeout_s=60, interval_s=1.0)


def test_a_success_clears_the_accounts_count(accounts: Database, settings: Settings) -> None:
    app = create_app(settings, database=accounts)
    first = _browser(app, "192.0.2.1")
    for _ in range(9):
        assert _sign_in(first, ADMIN_EMAIL, "wrong password").status_code == 401
    assert _sign_in(first, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303

    # From elsewhere, ten more failures are allowed again, then the account is closed.
    second = _browser(app, "192.0.2.2")
    for _ in range(10):
        assert _sign_in(second, ADMIN_EMAIL, "wrong password").status_code == 401
    assert "for this account" in _refusal(_sign_in(second, ADMIN_EMAIL, ADMIN_PASSWORD))


def test_failures_from_one_address_close_it_for_every_account(
    accounts: Database, settings: Settings
) -> None:
    app = create_app(settings, database=accounts)
    guesser = _browser(app, "192.0.2.1")
    for number in range(10):
        answer = _sign_in(guesser, f"someone{number}@example.com", "wrong password")
        assert answer.status_code == 401
    message = _refusal(_sign_in(guesser, OTHER_EMAIL, OTHER_PASSWORD))
    assert message.startswith("Too many failed sign-ins from your network address: try again in ")
    assert "15 minutes" in message

    assert _sign_in(_browser(app, "192.0.2.2"), OTHER_EMAIL, OTHER_PASSWORD).status_code == 303


def test_without_redis_sign_in_goes_ahead_with_a_warning(
    accounts: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(settings, redis_url="redis://127.0.0.1:1/0")
    browser = _browser(create_app(settings, database=accounts), "192.0.2.1")
    with caplog.at_level(logging.WARNING, logger="edm.dashboard.sign_in"):
        for _ in range(11):
            assert _sign_in(browser, ADMIN_EMAIL, "wrong password").status_code == 401
        assert _sign_in(browser, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303
    assert "sign-in attempts are not limited: Redis at redis://127.0.0.1:1/0" in caplog.text
