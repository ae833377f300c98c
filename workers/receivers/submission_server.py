"""``edm submit serve``: SMTP submission (RFC 6409) for applications that already speak SMTP.

Never an open relay: every MAIL, RCPT and DATA needs AUTH (530 5.7.0 before it), and AUTH is
offered only on a TLS connection (STARTTLS, or the implicit-TLS port) or, when
``submit_auth_on_loopback``, from loopback. A wrong login or password gets 535 5.7.8 alike. A
signed-in application may use only its credential's sender domains, in MAIL FROM and in the From
header (550 5.7.1); its rate is global, in Redis (451 4.7.1 past it); a recipient suppressed for
a hard bounce or a complaint is refused at RCPT (550 5.7.1 with the reason). Each recipient
becomes a transactional message of its own through ``submit_message``, and the final "." is
answered 250 only once all of them are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import math
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from campaigns.core.errors import InputError, StateError
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lists.fields import email_key, normalise_email
from campaigns.lists.suppression import TRANSACTIONAL_CATEGORY
from campaigns.transactional.raw_mime import MAX_FROM_ADDRESSES, canonical_message, from_addresses
from campaigns.transactional.requests import MessageRequest
from campaigns.transactional.smtp_credentials import SmtpLogin, verify_smtp_login
from campaigns.transactional.submission import Publish, blocking_suppression, submit_message
from campaigns.transactional.submitted_mime import forget_unused_mime, stored_mime
from workers.receivers.login_backoff import LoginBackoff

log = logging.getLogger("edm.submit")

RateCheck = Callable[[SmtpLogin], Awaitable[bool]]
"""Takes one recipient from a login's rate (``rate_per_minute`` is set): False when none is left.
It raises when the count cannot be reached, and the recipient is refused for now."""

SMTP_SCOPE_PREFIX = "smtp:"
"""Idempotency scope of a credential's messages: ``smtp:<credential id>``."""


MAX_AUTH_FAILURES_PER_CONNECTION = 3
"""Failed AUTH commands one connection may make; the next AUTH is answered 421 and closed."""


@dataclass(frozen=True)
class SubmissionPolicy:
    max_message_bytes: int
    max_recipients: int
    auth_on_loopback: bool = True
    max_auth_failures: int = MAX_AUTH_FAILURES_PER_CONNECTION


class SubmissionSMTP(SMTP):
    """aiosmtpd's server, with AUTH allowed without STARTTLS on a connection that is TLS from
    its start or, if the policy says so, from loopback; and failed logins bounded per
    connection and, through the handler's ``LoginBackoff``, per client address."""

    def __init__(self, handler: SubmissionHandler, **kwargs: Any) -> None:
        super().__init__(handler, authenticator=self._counted_authenticate, **kwargs)
        self._handler = handler
        self._auth_on_loopback = handler.policy.auth_on_loopback
        self._auth_failures = 0
        self._client_address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        implicit_tls = transport.get_extra_info("ssl_object") is not None
        peer = transport.get_extra_info("peername")
        self._client_address = client_address(peer)
        if implicit_tls or (self._auth_on_loopback and is_loopback(peer)):
            self._auth_require_tls = False

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        # Checked before the password is: a client told to wait cannot guess meanwhile.
        wait_s = self._handler.login_backoff.wait_s(self._client_address)
        if wait_s > 0:
            await self._refuse_and_close(
                f"421 4.7.0 Too many failed logins from your address, try again in "
                f"{math.ceil(wait_s)} s"
            )
            return
        if self._auth_failures >= self._handler.policy.max_auth_failures:
            await self._refuse_and_close("421 4.7.0 Too many failed logins, closing connection")
            return
        await super().smtp_AUTH(arg)

    def _counted_authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        result = self._handler.authenticate(server, session, envelope, mechanism, auth_data)
        if result.success:
            self._handler.login_backoff.succeeded(self._client_address)
        else:
            self._auth_failures += 1
            self._handler.login_backoff.failed(self._client_address)
        return result

    async def _refuse_and_close(self, reply: str) -> None:
        log.info("%s: %s", self._client_address, reply)
        await self.push(reply)
        if self.transport is not None:
            self.transport.close()


def client_address(peer: Any) -> str:
    try:
        return str(ipaddress.ip_address(peer[0]))
    except (TypeError, ValueError, IndexError):
        return "unknown"


def is_loopback(peer: Any) -> bool:
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False  # a Unix socket or an unknown peer: never exempt


class SubmissionHandler:
    """aiosmtpd handler: the login at AUTH, sender at MAIL, recipients at RCPT, messages at DATA."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        policy: SubmissionPolicy,
        publish: Publish,
        rate_check: RateCheck | None,
        login_backoff: LoginBackoff | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.policy = policy
        self.login_backoff = login_backoff or LoginBackoff()
        self._publish = publish
        self._rate_check = rate_check

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "surrogateescape")
        password = auth_data.password.decode("utf-8", "surrogateescape")
        found = verify_smtp_login(self.database, login, password)
        if found is None:
            log.info("failed AUTH %s from %s", mechanism, session.peer)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=found)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not signed_in(session).may_send_as(address):
            return f"550 5.7.1 <{address}>: sender domain not allowed for this login"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        limit = self.policy.max_recipients
        if len(envelope.rcpt_tos) >= limit:
            return f"452 4.5.3 Too many recipients (at most {limit} per message)"
        try:
            to_key = email_key(normalise_email(address))
        except InputError as error:
            return f"553 5.1.3 <{address}>: {error}"
        reason = await asyncio.to_thread(
            blocking_suppression,
            self.database,
            to_key,
            TRANSACTIONAL_CATEGORY,
            self.settings.secret,
        )
        if reason is not None:
            return f"550 5.7.1 <{address}>: recipient suppressed ({reason})"
        refusal = await self._rate_refusal(signed_in(session))
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def _rate_refusal(self, login: SmtpLogin) -> str | None:
        if login.rate_per_minute is None:
            return None
        if self._rate_check is None:
            return "451 4.7.1 Rate limit cannot be checked now, try again later"
        try:
            within = await self._rate_check(login)
        except Exception:
            log.exception("rate limit of SMTP credential %s not checked", login.id)
            return "451 4.7.1 Rate limit cannot be checked now, try again later"
        if not within:
            return f"451 4.7.1 Rate limit reached ({login.rate_per_minute} a minute), try later"
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = signed_in(session)
        raw = envelope.original_content
        if not isinstance(raw, bytes) or envelope.mail_from is None:
            return "554 5.6.0 Message refused: no content"
        try:
            senders = from_addresses(canonical_message(raw))
        except InputError as error:
            return f"554 5.6.0 Message refused: {error}"
        if not senders or len(senders) > MAX_FROM_ADDRESSES:
            return "550 5.7.1 Message refused: one From address (or a few) needed"
        refused = next((sender for sender in senders if not login.may_send_as(sender)), None)
        if refused is not None:
            return f"550 5.7.1 From <{refused}>: sender domain not allowed for this login"
        try:
            # One copy of the bytes, however many recipients: each message points at it.
            mime_id = await asyncio.to_thread(stored_mime, self.database, raw)
            record = self._recorder(login, envelope.mail_from, raw, mime_id)
            try:
                for recipient in envelope.rcpt_tos:
                    await asyncio.to_thread(record, recipient)
            finally:
                await asyncio.to_thread(forget_unused_mime, self.database, mime_id)
        except InputError as error:
            return f"554 5.6.0 Message refused: {error}"
        except StateError as error:
            return f"550 5.7.1 {error}"
        except Exception:
            log.exception("could not record a message from %s; asked to resend", session.peer)
            return "451 4.3.0 Temporary failure recording the message, try again later"
        return f"250 2.0.0 OK: {len(envelope.rcpt_tos)} message(s) queued"

    def _recorder(
        self, login: SmtpLogin, sender: str, raw: bytes, mime_id: int
    ) -> Callable[[str], None]:
        def record(recipient: str) -> None:
            # Keyed by content and recipient: a client that resends after a 451 part-way through
            # gets no second copy for the recipients recorded the first time.
            key = hashlib.sha256(raw + b"\0" + recipient.encode("utf-8", "replace")).hexdigest()
            submit_message(
                self.database,
                MessageRequest(
                    to=recipient,
                    from_address=sender,
                    raw_mime=raw,
                    mime_id=mime_id,
                    idempotency_key=key,
                ),
                settings=self.settings,
                idempotency_scope=f"{SMTP_SCOPE_PREFIX}{login.id}",
                publish=self._publish,
            )

        return record


def signed_in(session: Session) -> SmtpLogin:
    login = session.auth_data
    if not isinstance(login, SmtpLogin):
        # aiosmtpd answers 530 before any hook when nobody signed in; this is the second lock.
        raise PermissionError("SMTP submission hook reached without AUTH")
    return login


def make_submission_smtp(
    handler: SubmissionHandler, *, tls_context: ssl.SSLContext | None, hostname: str | None = None
) -> SubmissionSMTP:
    return SubmissionSMTP(
        handler,
        hostname=hostname,
        data_size_limit=handler.policy.max_message_bytes,
        decode_data=False,
        enable_SMTPUTF8=True,
        tls_context=tls_context,
        auth_required=True,
        auth_require_tls=True,
    )


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise InputError(
            f"EDM_SUBMIT_TLS_CERT {cert_file} / EDM_SUBMIT_TLS_KEY {key_file}: {error}"
        ) from None
    return context


def policy_of(settings: Settings) -> SubmissionPolicy:
    return SubmissionPolicy(
        max_message_bytes=settings.submit_max_message_bytes,
        max_recipients=settings.submit_max_recipients,
        auth_on_loopback=settings.submit_auth_on_loopback,
    )


async def serve_submission(
    handler: SubmissionHandler,
    *,
    host: str,
    port: int,
    implicit_tls_port: int | None,
    tls_context: ssl.SSLContext | None,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda: make_submission_smtp(handler, tls_context=tls_context), host=host, port=port
        )
    ]
    if implicit_tls_port is not None and tls_context is not None:
        servers.append(
            await loop.create_server(
                lambda: make_submission_smtp(handler, tls_context=None),
                host=host,
                port=implicit_tls_port,
                ssl=tls_context,
            )
        )
    for server, kind in zip(servers, ("STARTTLS" if tls_context else "plain", "TLS"), strict=False):
        address: Any = server.sockets[0].getsockname()
        print(f"edm submit: listening on {address[0]}:{address[1]} ({kind})", flush=True)
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


def run_submission_server(
    handler_factory: Callable[[], SubmissionHandler],
    *,
    host: str,
    port: int,
    implicit_tls_port: int | None,
    tls_context: ssl.SSLContext | None,
) -> None:
    """Serve until SIGTERM or SIGINT; the handler is made on the server's loop (its Redis
    client belongs to that loop)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signal_number, stop.set)
        await serve_submission(
            handler_factory(),
            host=host,
            port=port,
            implicit_tls_port=implicit_tls_port,
            tls_context=tls_context,
            stop=stop,
        )

    asyncio.run(main())
