"""A small pool of reused SMTP connections to one relay, and what became of each message sent.

One message, one recipient, one transaction: MAIL, RCPT and DATA go out together when the relay
offers PIPELINING (see channel.py), and the body only after DATA's 354. Until the body has
been written nothing can have been delivered, so those failures are safe to retry ("deferred").
Once it has, a lost or late reply to the final "." leaves the message's fate "unknown": the relay
may have queued it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiosmtplib
from aiosmtplib import SMTPStatus

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.smtp_replies import enhanced_status, one_line
from workers.smtp.channel import SmtpChannel
from workers.smtp.url import SmtpRelay

BeforePayload = Callable[[], Awaitable[None]]

_LINE_ENDING = re.compile(rb"\r\n|\n|\r(?!\n)")
_QUIT_TIMEOUT_S = 5.0
_ENVELOPE_REPLIES: list[frozenset[int]] = [
    frozenset({SMTPStatus.completed}),
    frozenset({SMTPStatus.completed, SMTPStatus.will_forward}),
    frozenset({SMTPStatus.start_input}),
]
"""What MAIL, RCPT and DATA are answered when all is well."""
_EXTENSIONS_USED = ("pipelining", "smtputf8", "8bitmime")


class SendOutcomeKind(enum.StrEnum):
    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    """Not delivered, and safe to send again: a 4xx, or trouble before the message went out."""
    REJECTED = "rejected"
    """A 5xx, or refused before sending (an address SMTP cannot carry)."""
    UNKNOWN = "unknown"
    """Sent, but no usable reply to the final ".": the relay may have the message."""


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one message. ``kind`` decides; code, message and status explain.

    ``status`` is the RFC 3463 enhanced status code from the reply text, when it has one.
    """

    kind: SendOutcomeKind
    code: int | None
    message: str
    status: str | None
    relay: str | None = None
    """Named by RelaySet when a relay gave this verdict (not for failures to connect)."""
    connect_failed: bool = False
    """Connecting, securing, greeting or logging in failed: about the relay, not the recipient
    (whatever the reply code). Always with kind ``DEFERRED``."""

    @classmethod
    def from_reply(cls, kind: SendOutcomeKind, code: int, message: str) -> SendOutcome:
        return cls(kind, code, one_line(f"{code} {message}"), enhanced_status(message))

    @classmethod
    def from_error(cls, kind: SendOutcomeKind, context: str, error: BaseException) -> SendOutcome:
        return cls(kind, None, one_line(f"{context}: {_describe(error)}"), None)


class _ConnectFailed(Exception):
    """Opening a connection failed; carries a one-line reason and the reply, if there was one."""

    def __init__(self, reason: str, code: int | None, reply_message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.reply_message = reply_message


class _ClosingSockets:
    """Sockets of discarded connections, until they are really closed.

    Closing a TLS connection needs the event loop for its close_notify exchange; a loop that
    ended first would leave the socket to the garbage collector. close() waits here for them.
    """

    def __init__(self) -> None:
        self._sockets: list[Any] = []

    def add(self, sock: Any) -> None:
        self._sockets = [known for known in self._sockets if known.fileno() != -1]
        self._sockets.append(sock)

    async def wait(self, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            self._sockets = [sock for sock in self._sockets if sock.fileno() != -1]
            if not self._sockets or asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.01)


class _Slot:
    """One place in the pool: a connection, open or not yet (re)opened.

    While it opens, aiosmtplib drives it (``smtp``); once ready, an SmtpChannel (``channel``).
    """

    __slots__ = ("channel", "closing", "smtp", "sock")

    def __init__(self, closing: _ClosingSockets) -> None:
        self.closing = closing
        self.smtp: aiosmtplib.SMTP | None = None
        self.channel: SmtpChannel | None = None
        self.sock: Any = None

    @property
    def is_connected(self) -> bool:
        return self.channel is not None and self.channel.is_connected

    def attach(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp
        # Taken before STARTTLS: aiosmtplib closes connections itself on some errors, after
        # which the transport, and with it the socket, is out of reach.
        self.sock = smtp.transport.get_extra_info("socket") if smtp.transport else None

    def take_over(self) -> SmtpChannel:
        """Hand the greeted, secured and authenticated connection to an SmtpChannel."""
        smtp = self.smtp
        assert smtp is not None and smtp.transport is not None
        extensions = frozenset(name for name in _EXTENSIONS_USED if smtp.supports_extension(name))
        # aiosmtplib types it BaseTransport; it is the stream transport its protocol was given.
        self.channel = SmtpChannel(cast(asyncio.Transport, smtp.transport), extensions)
        self.smtp = None
        return self.channel

    def discard(self) -> None:
        """Drop the connection without QUIT: used when its state is in doubt."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None
        if self.sock is not None:
            self.closing.add(self.sock)
            self.sock = None

    async def quit(self) -> None:
        if self.channel is not None and self.channel.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await self.channel.command(b"QUIT", _QUIT_TIMEOUT_S)
        self.discard()


class SmtpPool:
    """Reused aiosmtplib connections to one relay, shared by the coroutines of one worker process.

    At most ``size`` connections are open at once; each is opened on first use and kept for the
    next send. Timeouts are in seconds: ``timeout_s`` for connecting and each command,
    ``data_timeout_s`` for the reply to the end of the message (RFC 5321 suggests 10 minutes).
    ``tls_context`` replaces the system trust store, e.g. for a relay with a private CA.
    Use the pool from one event loop only.
    """

    def __init__(
        self,
        relay: SmtpRelay,
        *,
        size: int,
        timeout_s: float,
        data_timeout_s: float = 600.0,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if timeout_s <= 0 or data_timeout_s <= 0:
            raise ValueError("timeout_s and data_timeout_s must be positive")
        self.relay = relay
        self.size = size
        self.timeout_s = timeout_s
        self.data_timeout_s = data_timeout_s
        self._local_hostname = local_hostname
        self._tls_context = tls_context
        self._closed = False
        self._closing = _ClosingSockets()
        # LIFO hands out the most recently used connection, so a quiet period lets the least used
        # ones idle out at the relay instead of keeping all of them half-warm.
        self._slots: asyncio.LifoQueue[_Slot] = asyncio.LifoQueue()
        for _ in range(size):
            self._slots.put_nowait(_Slot(self._closing))

    async def send(
        self,
        *,
        sender: str,
        recipient: str,
        message: bytes,
        before_payload: BeforePayload | None = None,
    ) -> SendOutcome:
        """Send ``message`` (the exact bytes, headers included) from ``sender`` to ``recipient``.

        Never raises for SMTP or network trouble: that is in the outcome. Cancelling a send
        while the message is in flight leaves its fate unknown and closes its connection.
        ``before_payload`` is awaited once the relay is ready for the data and before any of it
        is written; if it raises, nothing is sent and the exception propagates.
        """
        if self._closed:
            raise RuntimeError("SmtpPool is closed")
        slot = await self._slots.get()
        try:
            if self._closed:
                raise RuntimeError("SmtpPool is closed")
            return await self._send_on(slot, sender, recipient, message, before_payload)
        except BaseException:
            slot.discard()
            raise
        finally:
            self._slots.put_nowait(slot)

    async def check(self) -> None:
        """Connect, greet, authenticate and QUIT once; ServiceUnavailable if that fails."""
        slot = _Slot(self._closing)
        try:
            await self._open(slot)
            await slot.quit()
        except _ConnectFailed as failure:
            raise ServiceUnavailable(
                f"SMTP relay {self.relay.display()}: {failure.reason}"
            ) from None
        finally:
            slot.discard()
            await self._closing.wait(_QUIT_TIMEOUT_S)

    async def close(self) -> None:
        """QUIT every open connection, after the sends in progress finish; idempotent."""
        if self._closed:
            return
        self._closed = True
        slots = [await self._slots.get() for _ in range(self.size)]
        await asyncio.gather(*(slot.quit() for slot in slots))
        await self._closing.wait(_QUIT_TIMEOUT_S)
        for slot in slots:
            self._slots.put_nowait(slot)

    async def _send_on(
        self,
        slot: _Slot,
        sender: str,
        recipient: str,
        message: bytes,
        before_payload: BeforePayload | None,
    ) -> SendOutcome:
        try:
            envelope = _Envelope.for_addresses(sender, recipient)
        except ValueError as error:
            return SendOutcome(SendOutcomeKind.REJECTED, None, one_line(str(error)), None)
        while True:
            reused = slot.is_connected
            if not reused:
                try:
                    await self._open(slot)
                except _ConnectFailed as failure:
                    return _connect_outcome(failure)
            channel = slot.channel
            assert channel is not None
            if envelope.needs_smtputf8 and "smtputf8" not in channel.extensions:
                return SendOutcome(
                    SendOutcomeKind.REJECTED,
                    None,
                    "non-ASCII address and the relay lacks SMTPUTF8",
                    None,
                )
            try:
                replies = await channel.transaction(
                    envelope.commands(channel, message),
                    _ENVELOPE_REPLIES,
                    self.timeout_s,
                )
            except (aiosmtplib.SMTPException, OSError) as error:
                slot.discard()
                # Nothing of the message went out, so a dead reused connection is retried once
                # (the retry runs on a fresh connection, which is never retried).
                if reused:
                    continue
                return SendOutcome.from_error(
                    SendOutcomeKind.DEFERRED, "before the message was sent", error
                )
            # A relay closing a connection it considers idle may say so with a 421 to MAIL.
            if reused and replies[0].code == SMTPStatus.domain_unavailable:
                slot.discard()
                continue
            break
        refusal = next(
            (
                reply
                for reply, accepted in zip(replies, _ENVELOPE_REPLIES, strict=False)
                if reply.code not in accepted
            ),
            None,
        )
        if refusal is not None:
            if replies[-1].code == aiosmtplib.SMTPStatus.start_input:
                # A relay that refused the envelope yet waits for a message: too confused to
                # reuse, and nothing may be written to it.
                slot.discard()
            return await self._refused(slot, refusal.code, refusal.message)
        if before_payload is not None:
            await before_payload()
        return await self._send_data(slot, channel, message)

    async def _send_data(self, slot: _Slot, channel: SmtpChannel, message: bytes) -> SendOutcome:
        try:
            channel.write(_data_payload(message))
        except (aiosmtplib.SMTPException, OSError) as error:
            slot.discard()
            return SendOutcome.from_error(
                SendOutcomeKind.DEFERRED, "before the message was sent", error
            )
        try:
            reply = await channel.reply(self.data_timeout_s)
        except (aiosmtplib.SMTPException, OSError) as error:
            slot.discard()
            return SendOutcome.from_error(
                SendOutcomeKind.UNKNOWN,
                "no reply after the message was sent (the relay may have it)",
                error,
            )
        if reply.code == SMTPStatus.domain_unavailable:
            slot.discard()
        if 200 <= reply.code < 300:
            return SendOutcome.from_reply(SendOutcomeKind.ACCEPTED, reply.code, reply.message)
        if 400 <= reply.code < 600:
            return SendOutcome.from_reply(_refusal_kind(reply.code), reply.code, reply.message)
        slot.discard()
        return SendOutcome.from_reply(SendOutcomeKind.UNKNOWN, reply.code, reply.message)

    async def _refused(self, slot: _Slot, code: int, message: str) -> SendOutcome:
        """A reply refusing MAIL, RCPT or DATA: report it, and reset the connection for reuse."""
        outcome = SendOutcome.from_reply(_refusal_kind(code), code, message)
        if not 400 <= code < 600 or code == SMTPStatus.domain_unavailable or not slot.is_connected:
            slot.discard()
            return outcome
        assert slot.channel is not None
        try:
            reset = await slot.channel.command(b"RSET", self.timeout_s)
        except (aiosmtplib.SMTPException, OSError):
            slot.discard()
        else:
            if reset.code != aiosmtplib.SMTPStatus.completed:
                slot.discard()
        return outcome

    async def _open(self, slot: _Slot) -> None:
        """Connect, secure, greet and authenticate; _ConnectFailed with a reason if not."""
        slot.discard()
        relay = self.relay
        try:
            smtp = aiosmtplib.SMTP(
                hostname=relay.host,
                port=relay.port,
                local_hostname=await self._hostname(),
                timeout=self.timeout_s,
                use_tls=relay.security == "tls",
                # Not None, which would mean opportunistic STARTTLS; it is run below instead.
                start_tls=False,
                tls_context=self._tls_context,
            )
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as refusal:
            raise _ConnectFailed(
                one_line(f"{refusal.code} {refusal.message}"), refusal.code, refusal.message
            ) from None
        except (aiosmtplib.SMTPException, OSError, ValueError) as error:
            raise _ConnectFailed(self._connect_error(error), None, "") from None
        slot.attach(smtp)
        try:
            if relay.security == "starttls":
                await smtp.starttls()
            if smtp.is_ehlo_or_helo_needed:
                await _greet(smtp)
            if relay.username is not None:
                await smtp.login(relay.username, relay.password or "")
            slot.take_over()
        except aiosmtplib.SMTPResponseException as refusal:
            slot.discard()
            raise _ConnectFailed(
                one_line(f"{refusal.code} {refusal.message}"), refusal.code, refusal.message
            ) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            slot.discard()
            raise _ConnectFailed(_describe(error), None, "") from None

    def _connect_error(self, error: BaseException) -> str:
        cause = error.__cause__
        # asyncio words a refused connection "Connect call failed"; the errno says what happened.
        if isinstance(cause, OSError) and cause.errno and not isinstance(cause, ssl.SSLError):
            reason = os.strerror(cause.errno)
            return f"cannot connect to {self.relay.host}:{self.relay.port}: {reason}"
        return _describe(error)

    async def _hostname(self) -> str:
        # socket.getfqdn() can take seconds where reverse DNS is broken: look it up once per
        # pool rather than once per connection, as aiosmtplib would.
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname


@dataclass(frozen=True)
class _Envelope:
    """MAIL FROM and RCPT TO of one message, worded as aiosmtplib would."""

    needs_smtputf8: bool
    mail_from: bytes
    rcpt_to: bytes

    @classmethod
    def for_addresses(cls, sender: str, recipient: str) -> _Envelope:
        """ValueError for an address that cannot go on an SMTP command line."""
        needs_smtputf8 = not (sender.isascii() and recipient.isascii())
        encoding = "utf-8" if needs_smtputf8 else "ascii"
        return cls(
            needs_smtputf8,
            b"MAIL FROM:" + _path(sender, encoding),
            b"RCPT TO:" + _path(recipient, encoding),
        )

    def commands(self, channel: SmtpChannel, message: bytes) -> list[bytes]:
        mail = self.mail_from
        if self.needs_smtputf8:
            mail += b" SMTPUTF8"
        if not message.isascii() and "8bitmime" in channel.extensions:
            mail += b" BODY=8BITMIME"
        return [mail, self.rcpt_to, b"DATA"]


def _path(address: str, encoding: str) -> bytes:
    """``<address>`` for MAIL FROM or RCPT TO. Addresses here are bare (validated on import,
    or made by the sender), so no parsing; anything that could end the command line is refused.
    """
    if not address.isprintable() or " " in address or "<" in address or ">" in address:
        raise ValueError(f"not usable as an SMTP address: {address!r}")
    return f"<{address}>".encode(encoding)


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        if not smtp.is_connected:
            raise
        await smtp.helo()


def _connect_outcome(failure: _ConnectFailed) -> SendOutcome:
    # Whatever the code, a failed greeting, STARTTLS or AUTH is about the relay, not the recipient.
    return SendOutcome(
        SendOutcomeKind.DEFERRED,
        failure.code,
        one_line(f"connecting to the relay: {failure.reason}"),
        enhanced_status(failure.reply_message) if failure.code is not None else None,
        connect_failed=True,
    )


def _refusal_kind(code: int) -> SendOutcomeKind:
    """5xx is final; anything else refusing (4xx, or nonsense) may work later."""
    return SendOutcomeKind.REJECTED if 500 <= code < 600 else SendOutcomeKind.DEFERRED


def _data_payload(message: bytes) -> bytes:
    """The message as sent after DATA: CRLF line endings, leading dots doubled, final "."."""
    crlf = message.count(b"\r\n")
    # Built messages already end their lines in CRLF: counting is cheaper than a regex pass.
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = _LINE_ENDING.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    payload = message.replace(b"\r\n.", b"\r\n..")
    if payload.startswith(b"."):
        payload = b"." + payload
    return payload + b".\r\n"


def _describe(error: BaseException) -> str:
    text = str(error)
    cause = error.__cause__
    # aiosmtplib wraps the OS error ("Connection refused") as the cause of a generic message.
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return one_line(text or type(error).__name__)
