"""SMTP submission with real parts: ``edm submit serve`` as a subprocess spoken to with smtplib,
real ``edm worker`` processes, Redis, and an SMTP sink the worker delivers to."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.bounces.verp import find_message_id, find_return_path
from campaigns.core.models import SubmittedMime, TransactionalMessage
from campaigns.core.storage import Database
from campaigns.lists.suppression import SuppressionReason, add_suppressions
from tests.conftest import run_edm, wait_until
from tests.dashboard_helpers import Dashboard
from tests.dkim_helpers import DOMAIN, SELECTOR, keygen
from tests.integration.test_transactional import api  # noqa: F401 (a fixture)
from tests.smtp_server import RecordingSmtpServer
from tests.tls_helpers import self_signed_certificate

LOGIN = f"app@{DOMAIN}"
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \((\w+)\)")

StartServer = Callable[..., dict[str, int]]


def message(sender: str = f"Shop <orders@{DOMAIN}>", *, extra: str = "", body: str = "Hi") -> bytes:
    return (
        f"From: {sender}\r\nTo: ann@example.net\r\nSubject: Your receipt\r\n"
        f"Message-ID: <app-chosen@{DOMAIN}>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n{extra}\r\n{body}\r\n"
    ).encode()


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def start_submission(edm_env: dict[str, str], tmp_path: Path) -> Iterator[StartServer]:
    """Starts ``edm submit serve`` on free loopback ports; yields its ports by kind."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    processes: list[subprocess.Popen[bytes]] = []

    def start(*, env: dict[str, str] | None = None, implicit_tls: bool = False) -> dict[str, int]:
        log_path = tmp_path / f"submit-{len(processes)}.log"
        args = [sys.executable, "-m", "edm", "submit", "serve", "--host", "127.0.0.1"]
        args += ["--port", "0"] + (["--implicit-tls-port", "0"] if implicit_tls else [])
        environment = {
            **edm_env,
            "EDM_SUBMIT_TLS_CERT": str(cert_file),
            "EDM_SUBMIT_TLS_KEY": str(key_file),
            **(env or {}),
        }
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args, env=environment, stdout=log_file, stderr=subprocess.STDOUT
            )
        processes.append(process)
        wanted = 2 if implicit_tls else 1
        assert wait_until(
            lambda: (
                len(LISTENING.findall(log_path.read_text())) >= wanted or process.poll() is not None
            ),
            timeout_s=60,
        )
        ports = {kind: int(port) for port, kind in LISTENING.findall(log_path.read_text())}
        assert len(ports) == wanted, log_path.read_text()
        return ports

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def create_credential(env: dict[str, str], *options: str) -> tuple[int, str]:
    result = run_edm(["users", "smtp-credentials", "create", "--email", LOGIN, *options], env)
    assert result.returncode == 0, result.stderr
    [credential_id] = re.findall(r"SMTP credential (\d+)", result.stdout)
    [password] = re.findall(r"only its hash is kept\): (\S+)", result.stdout)
    return int(credential_id), password


def signed_in(port: int, password: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.starttls(context=client_tls())
    client.login(LOGIN, password)
    return client


def test_nothing_is_accepted_without_auth_so_the_server_relays_nothing(
    start_submission: StartServer,
) -> None:
    port = start_submission()["STARTTLS"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        assert client.mail(f"orders@{DOMAIN}")[0] == 530
        code, reply = client.rcpt("victim@elsewhere.example")
        assert (code, reply[:5]) == (530, b"5.7.0")
        assert client.docmd("DATA")[0] == 530
        with pytest.raises(smtplib.SMTPSenderRefused) as refusal:
            client.sendmail("anyone@elsewhere.example", ["victim@elsewhere.example"], message())
        assert refusal.value.smtp_code == 530


def test_a_wrong_password_and_an_unknown_login_get_the_same_535(
    start_submission: StartServer, edm_env: dict[str, str]
) -> None:
    _, password = create_credential(edm_env)
    port = start_submission()["STARTTLS"]
    answers = []
    for login, given in ((LOGIN, password + "x"), (f"nobody@{DOMAIN}", password), (LOGIN, "")):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.starttls(context=client_tls())
            with pytest.raises(smtplib.SMTPAuthenticationError) as refusal:
                client.login(login, given)
            answers.append((refusal.value.smtp_code, refusal.value.smtp_error))
    assert answers == [(535, b"5.7.8 Authentication credentials invalid")] * 3


def auth_plain(client: smtplib.SMTP, login: str, password: str) -> tuple[int, bytes]:
    """One AUTH PLAIN command (smtplib's login tries one mechanism after another)."""
    token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


def test_guessing_passwords_gets_a_connection_closed_after_three_and_the_address_a_wait(
    start_submission: StartServer, edm_env: dict[str, str]
) -> None:
    _, password = create_credential(edm_env)
    port = start_submission()["STARTTLS"]

    def guesses(client: smtplib.SMTP) -> list[int]:
        client.starttls(context=client_tls())
        client.ehlo()
        return [auth_plain(client, LOGIN, f"guess-{n}")[0] for n in range(3)]

    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert guesses(client) == [535, 535, 535]
        # The fourth AUTH is not checked at all, even with the right password.
        code, text = auth_plain(client, LOGIN, password)
        assert (code, text) == (421, b"4.7.0 Too many failed logins, closing connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    # A new connection gets three more; then this address waits before any AUTH is checked.
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert guesses(client) == [535, 535, 535]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=client_tls())
        client.ehlo()
        code, text = auth_plain(client, LOGIN, password)
        assert code == 421 and text.startswith(b"4.7.0 Too many failed logins from your address")

    def signs_in() -> bool:
        try:
            signed_in(port, password).quit()
            return True
        except (smtplib.SMTPException, OSError):
            return False

    # The wait is short at first: the application with the right password gets in after it.
    assert wait_until(signs_in, timeout_s=30)


def test_auth_is_offered_only_after_starttls_without_the_loopback_exemption(
    start_submission: StartServer, edm_env: dict[str, str]
) -> None:
    _, password = create_credential(edm_env)
    ports = start_submission(env={"EDM_SUBMIT_AUTH_ON_LOOPBACK": "0"}, implicit_tls=True)
    with smtplib.SMTP("127.0.0.1", ports["STARTTLS"], timeout=30) as client:
        client.ehlo()
        assert not client.has_extn("auth") and client.has_extn("starttls")
        assert client.docmd("AUTH", "PLAIN AGFwcABzZWNyZXQ=")[0] == 538
        client.starttls(context=client_tls())
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        assert client.login(LOGIN, password)[0] == 235
    with smtplib.SMTP_SSL("127.0.0.1", ports["TLS"], timeout=30, context=client_tls()) as client:
        assert client.login(LOGIN, password)[0] == 235
    # With the exemption (the default), an application on the same host needs no TLS.
    loopback_port = start_submission()["STARTTLS"]
    with smtplib.SMTP("127.0.0.1", loopback_port, timeout=30) as client:
        client.ehlo()
        assert client.has_extn("auth")
        assert client.login(LOGIN, password)[0] == 235


def test_a_sender_outside_the_allowed_domains_is_refused_in_mail_from_and_in_from(
    start_submission: StartServer, edm_env: dict[str, str], database: Database
) -> None:
    _, password = create_credential(edm_env)
    port = start_submission()["STARTTLS"]
    with signed_in(port, password) as client:
        code, reply = client.mail("ceo@other.example")
        assert (code, reply[:5]) == (550, b"5.7.1")
        client.rset()
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            client.sendmail(f"orders@{DOMAIN}", ["ann@example.net"], message("ceo@other.example"))
        assert refusal.value.smtp_code == 550 and b"5.7.1" in refusal.value.smtp_error
    with database.session() as session:
        assert session.scalar(select(TransactionalMessage.job_id)) is None


def test_an_oversized_message_gets_552_whether_declared_or_not(
    start_submission: StartServer, edm_env: dict[str, str]
) -> None:
    _, password = create_credential(edm_env)
    port = start_submission(env={"EDM_SUBMIT_MAX_MESSAGE_BYTES": "2000"})["STARTTLS"]
    with signed_in(port, password) as client:
        assert client.mail(f"orders@{DOMAIN}", ["SIZE=5000"])[0] == 552
    with signed_in(port, password) as client:
        # Not declared (smtplib's sendmail would declare it): counted while it is read.
        assert client.mail(f"orders@{DOMAIN}")[0] == 250
        assert client.rcpt("ann@example.net")[0] == 250
        assert client.data(message(body=("x" * 70 + "\r\n") * 50))[0] == 552


def test_recipients_past_the_credential_rate_get_451_and_past_the_bound_452(
    start_submission: StartServer, edm_env: dict[str, str]
) -> None:
    _, password = create_credential(edm_env, "--rate", "3/min")
    port = start_submission(env={"EDM_SUBMIT_MAX_RECIPIENTS": "5"})["STARTTLS"]
    with signed_in(port, password) as client:
        client.mail(f"orders@{DOMAIN}")
        answers = [client.rcpt(f"r{n}@example.net") for n in range(4)]
    assert [code for code, _ in answers] == [250, 250, 250, 451]
    assert answers[3][1].startswith(b"4.7.1")
    _, unlimited = create_credential(edm_env)
    with signed_in(port, unlimited) as client:
        client.mail(f"orders@{DOMAIN}")
        codes = [client.rcpt(f"s{n}@example.net")[0] for n in range(6)]
    assert codes == [250] * 5 + [452]


def test_a_suppressed_recipient_is_refused_at_rcpt_with_the_reason(
    start_submission: StartServer, edm_env: dict[str, str], database: Database
) -> None:
    add_suppressions(database, ["gone@example.net"], reason=SuppressionReason.HARD_BOUNCE)
    add_suppressions(database, ["left@example.net"], reason=SuppressionReason.UNSUBSCRIBE)
    _, password = create_credential(edm_env)
    port = start_submission()["STARTTLS"]
    with signed_in(port, password) as client:
        client.mail(f"orders@{DOMAIN}")
        code, reply = client.rcpt("gone@example.net")
        assert code == 550 and b"hard_bounce" in reply
        # A marketing unsubscribe does not stop one-to-one mail.
        assert client.rcpt("left@example.net")[0] == 250


def test_a_submitted_message_is_delivered_as_sent_signed_with_a_verp_return_path(
    start_submission: StartServer,
    edm_env: dict[str, str],
    database: Database,
    smtp_server: RecordingSmtpServer,
    start_worker,
    api: Dashboard,  # noqa: F811
    tmp_path: Path,
) -> None:
    key = keygen(tmp_path, "rsa")
    start_worker(
        env={
            "EDM_DKIM_DOMAIN": DOMAIN,
            "EDM_DKIM_SELECTOR": SELECTOR,
            "EDM_DKIM_KEY_FILE": str(key.key_file),
        }
    )
    _, password = create_credential(edm_env)
    port = start_submission()["STARTTLS"]
    raw = message(
        extra="X-Order-Id: A-17\r\nBcc: hidden@example.org\r\n",
        body="Paid: 12.00\r\nBcc: not-a-header@evil.example",
    )
    recipients = ["ann@example.net", "hidden@example.org"]
    with signed_in(port, password) as client:
        assert client.sendmail(f"orders@{DOMAIN}", recipients, raw) == {}
    with database.session() as session:
        message_ids = list(session.scalars(select(TransactionalMessage.uuid)))
        copies = session.execute(
            select(TransactionalMessage.raw_mime, TransactionalMessage.mime_id)
        ).all()
        stored = session.scalars(select(SubmittedMime.raw)).all()
    assert len(message_ids) == 2  # recorded before the 250
    # The content once, for both recipients' messages.
    assert stored == [raw] and len({mime_id for _, mime_id in copies}) == 1
    assert {own for own, _ in copies} == {None}

    assert wait_until(lambda: len(smtp_server.messages) == 2, timeout_s=60)
    secret = api.settings.secret
    for received in smtp_server.messages:
        [recipient] = received.rcpt_tos
        assert recipient in recipients
        assert key.verifies(received.data)
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        assert parsed["Bcc"] is None
        assert parsed["X-Order-Id"] == "A-17" and parsed["Subject"] == "Your receipt"
        assert received.data.endswith(raw[raw.index(b"\r\n\r\n") :])  # the body, byte for byte
        assert parsed["Message-ID"] != f"<app-chosen@{DOMAIN}>"
        verp = find_return_path(secret, [received.mail_from])
        tagged = find_message_id(secret, parsed["Message-ID"])
        assert verp is not None and tagged is not None and verp.job_id == tagged.job_id

    def all_sent() -> bool:
        return all(api.get(f"/api/tx/{uuid}").json()["state"] == "sent" for uuid in message_ids)

    assert wait_until(all_sent, timeout_s=30)
    statuses = {api.get(f"/api/tx/{uuid}").json()["to"] for uuid in message_ids}
    assert statuses == set(recipients)


def test_credentials_are_listed_and_a_revoked_one_signs_nobody_in(
    start_submission: StartServer, edm_env: dict[str, str]
) -> None:
    credential_id, password = create_credential(
        edm_env, "--allowed-domains", f"{DOMAIN},Mail.Example.org", "--rate", "60/min"
    )
    listing = run_edm(["users", "smtp-credentials", "list", "--json"], edm_env)
    assert listing.returncode == 0, listing.stderr
    assert f'"allowed_domains": ["{DOMAIN}", "mail.example.org"]' in listing.stdout
    assert password not in listing.stdout
    assert (
        run_edm(["users", "smtp-credentials", "revoke", str(credential_id)], edm_env).returncode
        == 0
    )
    port = start_submission()["STARTTLS"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=client_tls())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(LOGIN, password)
    bad_rate = run_edm(
        ["users", "smtp-credentials", "create", "--email", LOGIN, "--rate", "9"], edm_env
    )
    assert bad_rate.returncode != 0 and "--rate" in bad_rate.stderr


def test_erasing_one_recipient_takes_the_address_out_of_the_shared_copy(
    start_submission: StartServer, edm_env: dict[str, str], database: Database
) -> None:
    _, password = create_credential(edm_env)
    port = start_submission()["STARTTLS"]
    raw = message(extra="Cc: erin@example.org\r\n")
    with signed_in(port, password) as client:
        assert (
            client.sendmail(f"orders@{DOMAIN}", ["ann@example.net", "erin@example.org"], raw) == {}
        )
    alone = message(sender=f"Shop <billing@{DOMAIN}>")
    with signed_in(port, password) as client:
        assert client.sendmail(f"billing@{DOMAIN}", ["erin@example.org"], alone) == {}

    result = run_edm(["recipients", "erase", "erin@example.org"], edm_env)
    assert result.returncode == 0, result.stderr

    with database.session() as session:
        copies = session.scalars(select(SubmittedMime.raw)).all()
        pointers = session.scalars(select(TransactionalMessage.mime_id)).all()
    # Ann's copy stays for her, without Erin; the copy only Erin had is gone.
    assert len(copies) == 1
    assert b"erin@example.org" not in copies[0].lower()
    assert b"ann@example.net" in copies[0]
    assert sorted(pointer is not None for pointer in pointers) == [False, False, True]
