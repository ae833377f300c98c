"""Shared fixtures: real databases (SQLite, and PostgreSQL when configured), a real Redis,
real SMTP servers, and real ``edm worker`` processes."""

from __future__ import annotations

import imaplib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from campaigns.core.storage import Database, open_database
from tests.dovecot_server import DOVECOT, DovecotServer
from tests.dovecot_server import PASSWORD as MAILBOX_PASSWORD
from tests.dovecot_server import USER as MAILBOX_USER
from tests.smtp_server import RecordingSmtpServer
from workers.embedded_redis import EmbeddedRedis

POSTGRES_URL = os.environ.get("EDM_TEST_DATABASE_URL", "")
NO_SKIPS = os.environ.get("EDM_TEST_NO_SKIPS") == "1"
"""CI sets this: there every service a test needs is installed, so a skip means a test that
silently stopped running (a missing package, an unset URL) and fails the run instead."""

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if NO_SKIPS and report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped:
        print(
            f"\nEDM_TEST_NO_SKIPS=1 but {len(_skipped)} tests were skipped:", *_skipped, sep="\n  "
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


TESTS_DIR = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "faults", "browser")
"""One folder per tier under tests/; a test's folder gives it the marker of the same name."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = _tier_of(item)
        if tier is not None:
            item.add_marker(tier)


def _tier_of(item: pytest.Item) -> str | None:
    try:
        folder = item.path.resolve().relative_to(TESTS_DIR).parts[0]
    except ValueError:
        return None
    if folder not in TIERS:
        return None
    # A unit test run against PostgreSQL needs a database server: that variant is integration.
    callspec = getattr(item, "callspec", None)
    database_kind = callspec.params.get("database_url") if callspec is not None else None
    if folder == "unit" and database_kind == "postgresql":
        return "integration"
    return folder


def _database_kinds() -> list[object]:
    postgres = pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="EDM_TEST_DATABASE_URL not set"),
    )
    return ["sqlite", postgres]


@pytest.fixture(params=_database_kinds())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'edm.sqlite3'}"
        return
    name = f"edm_test_{uuid.uuid4().hex[:12]}"
    admin_url = make_url(POSTGRES_URL).set(drivername="postgresql")
    with psycopg.connect(admin_url.render_as_string(hide_password=False), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(
            admin_url.render_as_string(hide_password=False), autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to the newest schema once per session: copying it is a
    fraction of the cost of running every migration again for each test."""
    path = tmp_path_factory.mktemp("migrated") / "edm.sqlite3"
    open_database(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def database(database_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    sqlite_path = Path(database_url.removeprefix("sqlite:///"))
    if database_url.startswith("sqlite:///") and not sqlite_path.exists():
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), sqlite_path)
    db = open_database(database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``EDM_TEST_REDIS_URL`` when set, else a private redis-server for this test session."""
    configured = os.environ.get("EDM_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def smtp_server() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer() as server:
        yield server


@pytest.fixture
def edm_env(
    database_url: str, redis_url: str, smtp_server: RecordingSmtpServer, tmp_path: Path
) -> dict[str, str]:
    """Environment for ``edm`` subprocesses: this test's database, Redis, relay and queue."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_REDIS_URL=redis_url,
        EDM_SMTP_URL=smtp_server.url,
        EDM_BASE_URL="https://mail.example.test",
        EDM_SECRET_KEY="test-secret",
        # A queue per test: workers of one test never take another test's batches.
        EDM_QUEUE_NAME=f"edm-test-{uuid.uuid4().hex[:8]}",
        EDM_DISPATCH_INTERVAL_S="0.2",
        EDM_BATCH_SIZE="200",
    )
    return environment


def run_edm(
    args: list[str], env: dict[str, str], *, timeout_s: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        input=stdin,
    )


@pytest.fixture
def start_worker(
    edm_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts real ``edm worker`` processes; all are stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *, concurrency: int = 1, dispatcher: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"worker-{len(started)}.log"
        args = [sys.executable, "-m", "edm", "worker", f"--concurrency={concurrency}"]
        if not dispatcher:
            args.append("--no-dispatcher")
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args,
                env={**edm_env, **(env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process.log_path = log_path  # type: ignore[attr-defined]
        started.append(process)
        return process

    yield start
    for process in started:
        _stop_process_group(process)


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
    except ProcessLookupError:
        pass


def wait_until(condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)")
    # Not pytest's tmp_path: its parent is private to this user, and Dovecot's own
    # unprivileged user must reach the mail folder.
    root = Path(tempfile.mkdtemp(prefix="edm-dovecot-"))
    root.chmod(0o755)
    try:
        with DovecotServer(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def deliver_to_mailbox(server: DovecotServer, *messages: bytes) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    try:
        client.login(MAILBOX_USER, MAILBOX_PASSWORD)
        for raw in messages:
            status, _ = client.append("INBOX", None, None, raw)
            assert status == "OK"
    finally:
        client.logout()
