"""A server killed between recording a message and answering for it: ``edm serve`` after the
commit and before its 202, ``edm submit serve`` after a commit and before its 250. The client
retries; every message arrives once.

The window is hit without help from the server: Redis is stopped (SIGSTOP) first, so a server
that has committed a message then waits on its publication (at most ``PUBLISH_TIMEOUT_S``);
the test kills it (SIGKILL) as soon as the message's row is in the database, then lets Redis go
on. A random kill of the API server at any moment of its request covers the other timings.
"""

from __future__ import annotations

import os
import random
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from campaigns.core.models import Job, JobState, TransactionalMessage
from campaigns.core.storage import Database
from dashboard.accounts import create_user
from dashboard.bearer_tokens import create_api_token
from dashboard.roles import Role
from tests.conftest import run_edm, wait_until
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, FAST_PASSWORD_HASHER
from tests.fault_helpers import fault_report, received_by
from tests.smtp_server import RecordingSmtpServer
from tests.tracking_helpers import accepts_connections, free_port
from workers.embedded_redis import EmbeddedRedis, find_redis_server

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals process groups"),
    pytest.mark.skipif(find_redis_server() is None, reason="no redis-server binary"),
]

DOMAIN = "shop.example"
SENDER = f"orders@{DOMAIN}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server
        if server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)  # stopped by a failed test: let it exit


@pytest.fixture
def env(
    edm_env: dict[str, str], redis_server: EmbeddedRedis, smtp_server: RecordingSmtpServer
) -> dict[str, str]:
    return {
        **edm_env,
        "EDM_REDIS_URL": redis_server.url,
        "EDM_REDISPATCH_AFTER_S": "2",
        "EDM_TX_FROM_ADDRESS": SENDER,
    }


@contextmanager
def redis_stopped(server: EmbeddedRedis) -> Iterator[None]:
    """Redis takes connections and commands into its socket buffers but answers nothing."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "edm", *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@contextmanager
def api_server(
    env: dict[str, str], log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = start_process(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log_path)
    try:
        assert wait_until(lambda: accepts_connections(port), timeout_s=60), log_path.read_text()
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            kill(process)


def messages_keyed(database: Database, key: str) -> list[TransactionalMessage]:
    with database.session() as session:
        return list(
            session.scalars(
                select(TransactionalMessage).where(TransactionalMessage.idempotency_key == key)
            )
        )


def messages_recorded(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(TransactionalMessage)) or 0)


def all_sent(database: Database, count: int) -> bool:
    with database.session() as session:
        states = session.scalars(
            select(Job.state).join(TransactionalMessage, TransactionalMessage.job_id == Job.id)
        ).all()
    return len(states) == count and set(states) == {JobState.SENT}


def post(base_url: str, token: str, key: str, to: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/api/tx",
        json={"to": {"email": to}, "subject": "Your code", "html": "<p>482913</p>"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        timeout=60,
    )


def attempt(call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """``call`` started in a thread; its outcome gets ``answer`` or the ``error`` it raised."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["answer"] = call()
        except (httpx.TransportError, smtplib.SMTPException, OSError) as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def api_token(database: Database) -> str:
    create_user(database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN, hasher=FAST_PASSWORD_HASHER)
    return create_api_token(database, ADMIN_EMAIL)


def test_edm_serve_killed_after_the_commit_and_before_the_202_sends_once_and_the_retry_gets_the_id(
    env: dict[str, str],
    database: Database,
    redis_server: EmbeddedRedis,
    smtp_server: RecordingSmtpServer,
    start_worker,
    tmp_path: Path,
) -> None:
    token = api_token(database)
    log_path = tmp_path / "serve.log"
    with api_server(env, log_path) as (server, base_url), redis_stopped(redis_server):
        client, outcome = attempt(lambda: post(base_url, token, "reset-1", "ann@example.net"))
        # Committed, and the server is still waiting on Redis to publish it.
        assert wait_until(
            lambda: bool(messages_keyed(database, "reset-1")), timeout_s=60, interval_s=0.01
        ), log_path.read_text()
        kill(server)
        client.join(timeout=60)
    assert "error" in outcome, outcome  # the client never got its 202
    [recorded] = messages_keyed(database, "reset-1")

    start_worker(env=env)
    with api_server(env, log_path) as (_, base_url):
        retry = post(base_url, token, "reset-1", "ann@example.net")
    assert retry.status_code == 202, retry.text
    assert retry.json() == {"id": recorded.uuid, "duplicate": True}
    assert wait_until(lambda: all_sent(database, 1), timeout_s=90)
    assert received_by(smtp_server) == {"ann@example.net": 1}
    assert messages_recorded(database) == 1


def test_edm_serve_killed_at_any_moment_of_a_request_neither_loses_nor_duplicates(
    env: dict[str, str],
    database: Database,
    smtp_server: RecordingSmtpServer,
    start_worker,
    tmp_path: Path,
) -> None:
    token = api_token(database)
    start_worker(env=env)
    log_path = tmp_path / "serve.log"
    rounds = 4
    lost_answers = 0
    for round_number in range(rounds):
        key, to = f"receipt-{round_number}", f"buyer{round_number}@example.net"
        with api_server(env, log_path) as (server, base_url):
            # A first request warms the server up, so the kill below falls anywhere from before
            # the message's request is read to after it is answered.
            warm = httpx.get(
                f"{base_url}/api/tx/{'0' * 36}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            assert warm.status_code == 404
            client, outcome = attempt(partial(post, base_url, token, key, to))
            time.sleep(random.uniform(0.0, 3.0))
            kill(server)
            client.join(timeout=60)
        lost_answers += "error" in outcome
        # The client retries with its key until it has an answer.
        with api_server(env, log_path) as (_, base_url):
            retry = post(base_url, token, key, to)
        assert retry.status_code == 202, retry.text
        first = outcome.get("answer")
        if isinstance(first, httpx.Response) and first.status_code == 202:
            assert retry.json() == {"id": first.json()["id"], "duplicate": True}

    assert wait_until(lambda: all_sent(database, rounds), timeout_s=120)
    received = received_by(smtp_server)
    fault_report(f"edm serve killed at random: {lost_answers}/{rounds} answers lost")
    assert received == {f"buyer{n}@example.net": 1 for n in range(rounds)}
    assert messages_recorded(database) == rounds


def submitted(sender: str, recipients: list[str]) -> bytes:
    return (
        f"From: Shop <{sender}>\r\nTo: {', '.join(recipients)}\r\nSubject: Your receipt\r\n"
        f"Message-ID: <receipt-77@{DOMAIN}>\r\nDate: Thu, 03 Dec 2026 17:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThanks\r\n"
    ).encode()


@contextmanager
def submission_server(
    env: dict[str, str], log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = start_process(
        ["submit", "serve", "--host", "127.0.0.1", "--port", str(port)], env, log_path
    )
    try:
        assert wait_until(lambda: accepts_connections(port), timeout_s=60), log_path.read_text()
        yield process, port
    finally:
        if process.poll() is None:
            kill(process)


def send_by_smtp(port: int, password: str, recipients: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.login(f"app@{DOMAIN}", password)
        client.sendmail(SENDER, recipients, submitted(SENDER, recipients))


def test_edm_submit_serve_killed_after_a_commit_and_before_the_250_sends_once_after_a_resend(
    env: dict[str, str],
    database: Database,
    redis_server: EmbeddedRedis,
    smtp_server: RecordingSmtpServer,
    start_worker,
    tmp_path: Path,
) -> None:
    created = run_edm(
        ["users", "smtp-credentials", "create", "--email", f"app@{DOMAIN}"], env, timeout_s=60
    )
    assert created.returncode == 0, created.stderr
    [password] = re.findall(r"only its hash is kept\): (\S+)", created.stdout)
    recipients = ["ann@example.net", "bob@example.net"]
    log_path = tmp_path / "submit.log"
    with (
        submission_server(env, log_path) as (server, port),
        redis_stopped(redis_server),
    ):
        client, outcome = attempt(lambda: send_by_smtp(port, password, recipients))
        # The first recipient's message is committed; the server waits on Redis to publish it.
        assert wait_until(
            lambda: messages_recorded(database) >= 1, timeout_s=60, interval_s=0.01
        ), log_path.read_text()
        kill(server)
        client.join(timeout=60)
    assert "error" in outcome, outcome  # no 250
    recorded_before_resend = messages_recorded(database)

    start_worker(env=env)
    # An application that got no 250 sends the same message again.
    with submission_server(env, log_path) as (_, port):
        send_by_smtp(port, password, recipients)
    assert wait_until(lambda: all_sent(database, 2), timeout_s=90)
    fault_report(
        f"edm submit serve killed before its 250: {recorded_before_resend} of 2 recorded, "
        f"{dict(received_by(smtp_server))} received after the resend"
    )
    assert received_by(smtp_server) == {address: 1 for address in recipients}
    assert messages_recorded(database) == 2
