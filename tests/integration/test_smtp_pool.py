"""The SMTP pool against real in-process aiosmtpd servers, and the relay URL it is built from."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from campaigns.core.errors import ConfigError, ServiceUnavailable
from campaigns.core.smtp_replies import enhanced_status, find_status
from tests.smtp_server import DataEnd, RecordingSmtpServer
from tests.tls_helpers import self_signed_certificate
from workers.smtp.pool import SendOutcome, SendOutcomeKind, SmtpPool
from workers.smtp.url import SmtpRelay, parse_smtp_url

T = TypeVar("T")
SENDER = "bounces+job1@news.example"
MESSAGE = b"From: news@news.example\r\nSubject: Hello\r\n\r\nHello there.\r\n"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def pool_for(server: RecordingSmtpServer, **options: Any) -> SmtpPool:
    settings: dict[str, Any] = {"size": 2, "timeout_s": 5.0, "data_timeout_s": 5.0}
    settings.update(options)
    return SmtpPool(parse_smtp_url(server.url), local_hostname="worker.test", **settings)


async def send_each(
    pool: SmtpPool, *recipients: str, message: bytes = MESSAGE
) -> list[SendOutcome]:
    """Send one after another, then close the pool."""
    try:
        return [
            await pool.send(sender=SENDER, recipient=recipient, message=message)
            for recipient in recipients
        ]
    finally:
        await pool.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Relay URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpRelay("mail.example", 25, "none", None, None)),
        ("smtp://127.0.0.1:2525", SmtpRelay("127.0.0.1", 2525, "none", None, None)),
        (
            "smtp+starttls://user:pass@mail.example",
            SmtpRelay("mail.example", 587, "starttls", "user", "pass"),
        ),
        (
            "smtps://me%40corp.example:p%3Aw%2Fd%40@smtp.example:2465",
            SmtpRelay("smtp.example", 2465, "tls", "me@corp.example", "p:w/d@"),
        ),
        ("SMTPS://key@smtp.example", SmtpRelay("smtp.example", 465, "tls", "key", None)),
        ("smtp://[::1]:25", SmtpRelay("::1", 25, "none", None, None)),
    ],
)
def test_parse_smtp_url_accepts(url: str, expected: SmtpRelay) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "no scheme"),
        ("mail.example:25", "unknown scheme"),
        ("http://mail.example", "unknown scheme 'http'"),
        ("smtp://", "no host"),
        ("smtp://mail.example:99999", "out of range"),
        ("smtp://mail.example:abc", "Port could not be cast"),
        ("smtp://mail.example/path", "unexpected path"),
        ("smtp://user:secret@mail.example", "needs smtp+starttls"),
        ("smtps://:secret@mail.example", "a password without a user name"),
    ],
)
def test_parse_smtp_url_rejects_in_one_line_naming_the_setting(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_smtp_url(url)
    message = str(raised.value)
    assert message.startswith("EDM_SMTP_URL")
    assert complaint in message
    assert "secret" not in message
    assert "\n" not in message


def test_relay_display_hides_the_password() -> None:
    relay = parse_smtp_url("smtps://me%40corp.example:hunter2@smtp.example")
    assert relay.display() == "smtps://me%40corp.example@smtp.example:465"
    assert "hunter2" not in repr(relay)


# Replies


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("5.1.1 <x@y>: Recipient address rejected", "5.1.1"),
        ("4.7.1 Try later", "4.7.1"),
        ("2.0.0 Ok: queued as 12345", "2.0.0"),
        ("5.7.26 Unauthenticated email is not accepted", "5.7.26"),
        ("Mailbox unavailable", None),
        ("3.1.1 not a class", None),
        ("5.1.1.1 too many parts", None),
        ("", None),
        ("5.01.001 leading zeros", "5.1.1"),
    ],
)
def test_enhanced_status(text: str, status: str | None) -> None:
    assert enhanced_status(text) == status


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("smtp; 550 5.1.1 <a@b>: Recipient address rejected", "5.1.1"),
        ("smtp; 550 5.01.01 user unknown", "5.1.1"),
        ("version 1.5.1.1 of nothing", None),
        ("no code here", None),
    ],
)
def test_an_enhanced_status_anywhere_in_a_diagnostic_reads_like_one_opening_a_reply(
    text: str, status: str | None
) -> None:
    assert find_status(text) == status


def test_a_reply_outcome_is_its_code_its_status_and_its_text_on_one_line() -> None:
    reply = SendOutcome.from_reply(
        SendOutcomeKind.REJECTED, 550, "5.1.1 No such user\nsee https://help.example"
    )
    assert reply.code == 550
    assert reply.status == "5.1.1"
    assert reply.message == "550 5.1.1 No such user see https://help.example"


# Sending


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Whether the relay offers PIPELINING: the pool sends the envelope either way."""
    return bool(request.param)


def test_many_messages_share_at_most_size_connections_and_each_arrives_once() -> None:
    recipients = [f"user{number}@example.org" for number in range(200)]

    async def send_all(pool: SmtpPool) -> list[SendOutcome]:
        try:
            return await asyncio.gather(
                *(
                    pool.send(sender=SENDER, recipient=recipient, message=MESSAGE)
                    for recipient in recipients
                )
            )
        finally:
            await pool.close()

    with RecordingSmtpServer() as server:
        outcomes = run(send_all(pool_for(server, size=4)))
        assert server.wait_for(200, timeout_s=5)
        received = Counter(tuple(message.rcpt_tos) for message in server.messages)
        connections = server.connections

    assert {outcome.kind for outcome in outcomes} == {SendOutcomeKind.ACCEPTED}
    assert received == Counter((recipient,) for recipient in recipients)
    assert 1 <= connections <= 4
    assert all(message.mail_from == SENDER for message in server.messages)


def test_message_bytes_arrive_intact_including_lines_that_start_with_a_dot(
    pipelining: bool,
) -> None:
    message = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
    with RecordingSmtpServer(pipelining=pipelining) as server:
        (outcome,) = run(send_each(pool_for(server), "dots@example.org", message=message))
        assert outcome.kind == SendOutcomeKind.ACCEPTED
        assert server.messages[0].data == message


def test_bare_line_feeds_and_carriage_returns_go_out_as_crlf_with_dots_doubled() -> None:
    message = b"Subject: mixed\n\n.first\rsecond\r\n.third\nlast"
    with RecordingSmtpServer() as server:
        (outcome,) = run(send_each(pool_for(server), "mixed@example.org", message=message))
        received = server.messages[0].data

    assert outcome.kind == SendOutcomeKind.ACCEPTED
    assert received == b"Subject: mixed\r\n\r\n.first\r\nsecond\r\n.third\r\nlast\r\n"


def test_an_address_that_would_end_the_command_line_is_rejected_and_nothing_is_sent() -> None:
    with RecordingSmtpServer() as server:
        (outcome,) = run(send_each(pool_for(server), "a@example.org\r\nRCPT TO:<b@example.org>"))
        connections = server.connections

    assert outcome.kind == SendOutcomeKind.REJECTED
    assert outcome.message.startswith("not usable as an SMTP address")
    assert connections == 0


def test_unknown_recipient_is_rejected_with_its_status_and_the_connection_is_reused(
    pipelining: bool,
) -> None:
    def behaviour(address: str) -> tuple[int, str] | None:
        return (550, "5.1.1 No such user") if address.startswith("nobody") else None

    with RecordingSmtpServer(pipelining=pipelining, behaviour=behaviour) as server:
        rejected, accepted = run(
            send_each(pool_for(server, size=1), "nobody@example.org", "someone@example.org")
        )
        assert [message.rcpt_tos for message in server.messages] == [["someone@example.org"]]
        connections = server.connections

    assert rejected == SendOutcome(SendOutcomeKind.REJECTED, 550, "550 5.1.1 No such user", "5.1.1")
    assert accepted.kind == SendOutcomeKind.ACCEPTED
    assert connections == 1


def test_temporary_refusal_is_deferred_and_the_connection_is_reused(pipelining: bool) -> None:
    def behaviour(address: str) -> tuple[int, str] | None:
        return (451, "4.7.1 Try later") if address.startswith("greylisted") else None

    with RecordingSmtpServer(pipelining=pipelining, behaviour=behaviour) as server:
        deferred, accepted = run(
            send_each(pool_for(server, size=1), "greylisted@example.org", "ok@example.org")
        )
        connections = server.connections

    assert deferred == SendOutcome(SendOutcomeKind.DEFERRED, 451, "451 4.7.1 Try later", "4.7.1")
    assert accepted.kind == SendOutcomeKind.ACCEPTED
    assert connections == 1


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ((554, "5.7.1 Message refused as spam"), SendOutcomeKind.REJECTED),
        ((452, "4.3.1 Disk full"), SendOutcomeKind.DEFERRED),
    ],
)
def test_reply_to_the_end_of_data_decides_the_outcome(
    reply: tuple[int, str], kind: SendOutcomeKind
) -> None:
    with RecordingSmtpServer(data_behaviour=lambda recipients: reply) as server:
        (outcome,) = run(send_each(pool_for(server), "user@example.org"))
        assert server.messages == []

    assert outcome.kind == kind
    assert (outcome.code, outcome.status) == (reply[0], enhanced_status(reply[1]))


def test_closed_port_is_deferred_with_a_one_line_reason() -> None:
    relay = SmtpRelay("127.0.0.1", closed_port(), "none", None, None)
    pool = SmtpPool(relay, size=2, timeout_s=2.0, data_timeout_s=2.0, local_hostname="w.test")

    (outcome,) = run(send_each(pool, "user@example.org"))

    assert outcome.kind == SendOutcomeKind.DEFERRED and outcome.connect_failed
    assert outcome.code is None and outcome.status is None
    assert "refused" in outcome.message.lower()
    assert "\n" not in outcome.message


def test_connections_the_relay_closed_while_idle_are_reopened() -> None:
    async def send_with_pause(pool: SmtpPool) -> list[SendOutcome]:
        try:
            first = await pool.send(sender=SENDER, recipient="a@example.org", message=MESSAGE)
            await asyncio.sleep(1.0)  # the server's idle timeout is 0.3 s
            second = await pool.send(sender=SENDER, recipient="b@example.org", message=MESSAGE)
            return [first, second]
        finally:
            await pool.close()

    with RecordingSmtpServer(idle_timeout_s=0.3) as server:
        outcomes = run(send_with_pause(pool_for(server, size=1)))
        recipients = [message.rcpt_tos for message in server.messages]
        connections = server.connections

    assert [outcome.kind for outcome in outcomes] == [
        SendOutcomeKind.ACCEPTED,
        SendOutcomeKind.ACCEPTED,
    ]
    assert recipients == [["a@example.org"], ["b@example.org"]]
    assert connections == 2


def test_a_connection_dropped_unnoticed_is_retried_once_before_mail_from(pipelining: bool) -> None:
    with RecordingSmtpServer(pipelining=pipelining) as server:

        async def send_after_drop(pool: SmtpPool) -> list[SendOutcome]:
            try:
                first = await pool.send(sender=SENDER, recipient="a@example.org", message=MESSAGE)
                # Blocking here keeps this event loop from seeing the close before MAIL FROM.
                server.disconnect_all()
                second = await pool.send(sender=SENDER, recipient="b@example.org", message=MESSAGE)
                return [first, second]
            finally:
                await pool.close()

        outcomes = run(send_after_drop(pool_for(server, size=1)))
        recipients = [message.rcpt_tos for message in server.messages]
        connections = server.connections

    assert [outcome.kind for outcome in outcomes] == [
        SendOutcomeKind.ACCEPTED,
        SendOutcomeKind.ACCEPTED,
    ]
    assert recipients == [["a@example.org"], ["b@example.org"]]
    assert connections == 2


def test_no_reply_to_the_end_of_data_is_unknown_after_the_data_timeout() -> None:
    with RecordingSmtpServer(data_behaviour=lambda recipients: DataEnd.HANG) as server:
        started = time.monotonic()
        (outcome,) = run(
            send_each(pool_for(server, timeout_s=30.0, data_timeout_s=1.0), "user@example.org")
        )
        elapsed_s = time.monotonic() - started

    assert outcome.kind == SendOutcomeKind.UNKNOWN
    assert outcome.code is None
    assert "\n" not in outcome.message
    assert 1.0 <= elapsed_s < 10.0


def test_connection_lost_at_the_end_of_data_is_unknown_because_the_relay_may_have_it(
    pipelining: bool,
) -> None:
    with RecordingSmtpServer(
        pipelining=pipelining, data_behaviour=lambda recipients: DataEnd.DROP
    ) as server:
        unknown, after = run(
            send_each(pool_for(server, size=1), "user@example.org", "next@example.org")
        )
        recipients = [message.rcpt_tos for message in server.messages]

    assert unknown.kind == SendOutcomeKind.UNKNOWN
    # The relay did take it: retrying would have sent a duplicate.
    assert recipients[0] == ["user@example.org"]
    assert after.kind == SendOutcomeKind.UNKNOWN  # the same server behaviour, on a fresh connection


def test_slow_reply_to_the_end_of_data_waits_for_data_timeout_not_command_timeout() -> None:
    with RecordingSmtpServer(delay_s=1.5) as server:
        (outcome,) = run(
            send_each(pool_for(server, timeout_s=0.5, data_timeout_s=10.0), "user@example.org")
        )
        assert len(server.messages) == 1

    assert outcome.kind == SendOutcomeKind.ACCEPTED


def test_check_passes_against_a_live_relay_and_fails_in_one_line_against_a_closed_port() -> None:
    with RecordingSmtpServer() as server:
        pool = pool_for(server)
        run(pool.check())
        run(pool.close())

    relay = SmtpRelay("127.0.0.1", closed_port(), "none", None, None)
    pool = SmtpPool(relay, size=1, timeout_s=2.0, data_timeout_s=2.0, local_hostname="w.test")
    with pytest.raises(ServiceUnavailable) as raised:
        run(pool.check())
    message = str(raised.value)
    assert message.startswith(f"SMTP relay smtp://127.0.0.1:{relay.port}: ")
    assert "\n" not in message


def test_a_closed_pool_refuses_to_send() -> None:
    with RecordingSmtpServer() as server:
        pool = pool_for(server)
        run(pool.close())
        with pytest.raises(RuntimeError, match="closed"):
            run(pool.send(sender=SENDER, recipient="user@example.org", message=MESSAGE))


class _EnvelopeAtOnceServer:
    """A relay offering PIPELINING that answers MAIL, RCPT and DATA only once all three have
    arrived: a client waiting for each reply before the next command never gets one."""

    def __init__(
        self, replies: bytes = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n"
    ) -> None:
        self._replies = replies
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.envelopes: list[bytes] = []
        self.messages: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 relay.test ESMTP\r\n")
            lines.readline()  # EHLO
            connection.sendall(b"250-relay.test\r\n250 PIPELINING\r\n")
            while (command := lines.readline()).startswith(b"MAIL"):
                envelope = command + lines.readline() + lines.readline()
                self.envelopes.append(envelope)
                connection.sendall(self._replies)
                body = b""
                while (line := lines.readline()) not in (b".\r\n", b""):
                    body += line
                if not line:
                    return  # the client hung up instead of sending a message
                self.messages.append(body)
                connection.sendall(b"250 2.0.0 Queued\r\n")
            connection.sendall(b"221 2.0.0 Bye\r\n")


def test_the_envelope_is_pipelined_when_the_relay_offers_it() -> None:
    server = _EnvelopeAtOnceServer()
    relay = SmtpRelay("127.0.0.1", server.port, "none", None, None)
    pool = SmtpPool(relay, size=1, timeout_s=3.0, data_timeout_s=3.0, local_hostname="w.test")
    try:
        outcomes = run(send_each(pool, "a@example.org", "b@example.org"))
    finally:
        server.close()

    assert [outcome.kind for outcome in outcomes] == [
        SendOutcomeKind.ACCEPTED,
        SendOutcomeKind.ACCEPTED,
    ]
    assert server.envelopes == [
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
        for recipient in ("a@example.org", "b@example.org")
    ]
    assert server.messages == [MESSAGE, MESSAGE]


def test_a_relay_that_refuses_the_recipient_yet_asks_for_data_gets_nothing_more() -> None:
    server = _EnvelopeAtOnceServer(b"250 Ok\r\n550 5.1.1 No such user\r\n354 Go ahead\r\n")
    relay = SmtpRelay("127.0.0.1", server.port, "none", None, None)
    pool = SmtpPool(relay, size=1, timeout_s=3.0, data_timeout_s=3.0, local_hostname="w.test")
    try:
        (outcome,) = run(send_each(pool, "nobody@example.org"))
    finally:
        server.close()

    assert outcome == SendOutcome(SendOutcomeKind.REJECTED, 550, "550 5.1.1 No such user", "5.1.1")
    assert server.messages == []


# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def test_starttls_and_auth_deliver_over_an_encrypted_session(
    certificate: tuple[Path, Path],
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    with RecordingSmtpServer(
        tls_context=server_tls(certificate), credentials=("sender", "p@ss")
    ) as server:
        relay = parse_smtp_url(f"smtp+starttls://sender:p%40ss@127.0.0.1:{server.port}")
        pool = SmtpPool(
            relay, size=1, timeout_s=5.0, data_timeout_s=5.0, tls_context=trust,
            local_hostname="w.test",
        )  # fmt: skip
        outcomes = run(send_each(pool, "a@example.org", "b@example.org"))
        connections = server.connections
        received = len(server.messages)

    assert [outcome.kind for outcome in outcomes] == [
        SendOutcomeKind.ACCEPTED,
        SendOutcomeKind.ACCEPTED,
    ]
    assert (received, connections) == (2, 1)


def test_wrong_password_fails_the_check_naming_the_relay_without_the_password(
    certificate: tuple[Path, Path],
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    with RecordingSmtpServer(
        tls_context=server_tls(certificate), credentials=("sender", "right")
    ) as server:
        relay = parse_smtp_url(f"smtp+starttls://sender:wrong@127.0.0.1:{server.port}")
        pool = SmtpPool(relay, size=1, timeout_s=5.0, tls_context=trust, local_hostname="w.test")
        with pytest.raises(ServiceUnavailable) as raised:
            run(pool.check())

    message = str(raised.value)
    assert message.startswith(f"SMTP relay smtp+starttls://sender@127.0.0.1:{server.port}: 535")
    assert "wrong" not in message


def test_a_refused_login_defers_as_a_connection_failure_keeping_the_reply_code(
    certificate: tuple[Path, Path],
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    with RecordingSmtpServer(
        tls_context=server_tls(certificate), credentials=("sender", "right")
    ) as server:
        relay = parse_smtp_url(f"smtp+starttls://sender:wrong@127.0.0.1:{server.port}")
        pool = SmtpPool(relay, size=1, timeout_s=5.0, tls_context=trust, local_hostname="w.test")
        (outcome,) = run(send_each(pool, "a@example.org"))
        assert server.messages == []

    assert (outcome.kind, outcome.code) == (SendOutcomeKind.DEFERRED, 535)
    assert outcome.connect_failed


def test_untrusted_certificate_defers_instead_of_sending_in_the_clear(
    certificate: tuple[Path, Path],
) -> None:
    with RecordingSmtpServer(tls_context=server_tls(certificate)) as server:
        relay = parse_smtp_url(f"smtp+starttls://127.0.0.1:{server.port}")
        pool = SmtpPool(relay, size=1, timeout_s=5.0, local_hostname="w.test")
        (outcome,) = run(send_each(pool, "a@example.org"))
        assert server.messages == []

    assert outcome.kind == SendOutcomeKind.DEFERRED and outcome.connect_failed
    assert "certificate" in outcome.message.lower()


def test_plain_relay_does_not_attempt_opportunistic_starttls(
    certificate: tuple[Path, Path],
) -> None:
    # The server offers STARTTLS with a certificate the client would reject; a plain relay must
    # not try it, so the message is sent unencrypted as configured.
    offered = server_tls(certificate)
    with RecordingSmtpServer(tls_context=offered, tls_required=False) as server:
        (outcome,) = run(send_each(pool_for(server), "a@example.org"))
        assert len(server.messages) == 1

    assert outcome.kind == SendOutcomeKind.ACCEPTED


def test_non_ascii_recipient_is_sent_with_smtputf8(pipelining: bool) -> None:
    with RecordingSmtpServer(pipelining=pipelining) as server:
        (outcome,) = run(send_each(pool_for(server), "josé@exämple.org"))
        recipients = [message.rcpt_tos for message in server.messages]

    assert outcome.kind == SendOutcomeKind.ACCEPTED
    assert recipients == [["josé@exämple.org"]]
