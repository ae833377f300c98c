"""Failed sign-ins limited per client address and slowed per account, in a real Redis shared by
every dashboard process, on SQLite and PostgreSQL. Time is a clock the tests move."""

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


class Clock:
    """Seconds since the epoch, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now_s = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_strangers_failures_slow_the_account_down_but_never_lock_the_owner_out(
    accounts: Database, settings: Settings
) -> None:
    clock = Clock()
    first_process = create_app(settings, database=accounts, clock=clock)
    second_process = create_app(settings, database=accounts, clock=clock)
    addresses = (f"203.0.113.{number}" for number in range(1, 255))
    # The stranger moves address often enough that no address limit stops them.
    for _ in range(5):
        guesser = _browser(first_process, next(addresses))
        assert _sign_in(guesser, ADMIN_EMAIL, "wrong password").status_code == 401

    # After five failures the account waits 2 s, in every process, whatever the password.
    owner = _browser(second_process, "198.51.100.7")
    refused = _sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD)
    message = _refusal(refused)
    assert re.fullmatch(
        r"Too many failed sign-ins for this account: try again in 2 seconds "
        r"\(after \d\d:\d\d:\d\d UTC\)\.",
        message,
    ), message
    assert refused.headers["retry-after"] == "2"
    # Typed the way a person might: still the same account.
    _refusal(_sign_in(owner, " Admin@Example.com", ADMIN_PASSWORD))
    # Other accounts are not slowed.
    assert _sign_in(owner, OTHER_EMAIL, OTHER_PASSWORD).status_code == 303

    # Each further failure doubles the wait: 2, 4, 8, 16, 32, then 60 s at most.
    for expected_wait_s in (4, 8, 16, 32, 60, 60):
        clock.now_s += 60
        guesser = _browser(first_process, next(addresses))
        assert _sign_in(guesser, ADMIN_EMAIL, "wrong password").status_code == 401
        too_soon = _sign_in(_browser(first_process, next(addresses)), ADMIN_EMAIL, "x" * 12)
        assert too_soon.headers["retry-after"] == str(expected_wait_s)

    # The owner who waits signs in, and that clears the account's count.
    clock.now_s += 60
    assert _sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303
    for _ in range(4):
        assert (
            _sign_in(_browser(first_process, next(addresses)), ADMIN_EMAIL, "no").status_code == 401
        )


def test_a_burst_of_parallel_guesses_is_admitted_only_up_to_the_first_wait(
    accounts: Database, settings: Settings
) -> None:
    clock = Clock()
    app = create_app(settings, database=accounts, clock=clock)
    answers = [
        _sign_in(_browser(app, f"192.0.2.{number}"), ADMIN_EMAIL, "wrong password").status_code
        for number in range(1, 10)
    ]
    # The clock stands still: the five free failures, then the account waits.
    assert answers == [401] * 5 + [429] * 4


def test_failures_from_one_address_close_it_for_every_account(
    accounts: Database, settings: Settings
) -> None:
    app = create_app(settings, database=accounts, clock=Clock())
    guesser = _browser(app, "192.0.2.1")
    for number in range(10):
        answer = _sign_in(guesser, f"someone{number}@example.com", "wrong password")
        assert answer.status_code == 401
    message = _refusal(_sign_in(guesser, OTHER_EMAIL, OTHER_PASSWORD))
    assert message.startswith("Too many failed sign-ins from your network address: try again in ")
    assert "15 minutes" in message

    assert _sign_in(_browser(app, "192.0.2.2"), OTHER_EMAIL, OTHER_PASSWORD).status_code == 303


def test_retrying_too_soon_does_not_close_the_owners_own_address(
    accounts: Database, settings: Settings
) -> None:
    clock = Clock()
    app = create_app(settings, database=accounts, clock=clock)
    for number in range(5):
        stranger = _browser(app, f"203.0.113.{number + 1}")
        assert _sign_in(stranger, ADMIN_EMAIL, "wrong password").status_code == 401
    owner = _browser(app, "198.51.100.7")
    for _ in range(20):
        _refusal(_sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD))
    clock.now_s += 2
    assert _sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303


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
