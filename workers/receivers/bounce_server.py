"""``edm bounces serve``: the inbound SMTP server the bounce domain's MX points to.

It accepts mail for ``bounces+<token>@`` (at the bounce domain, when one is configured) whose
token verifies and for the complaints address, refuses every other recipient with 550 (so forged
mail is never read), answers 452 past ``MAX_RECIPIENTS`` in one transaction, and replies 250 to
the final "." only once the intake has recorded the message. A database failure is answered with
451, so the sending MTA keeps the bounce and tries again later instead of it being lost; a message
refused unread (past a parse bound or the CPU limit) with 554. The intake reads each message in a
child process from a worker thread, so the event loop keeps answering other clients meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from campaigns.bounces.intake import BounceIntake, IntakeOutcome
from campaigns.bounces.reading_limits import MAX_MESSAGE_BYTES
from campaigns.bounces.verp import find_return_path, is_return_path
from campaigns.core.settings import Settings

log = logging.getLogger("edm.bounces")

MAX_RECIPIENTS = 50
"""Per transaction; a bounce has one, the rest is someone making the server work."""


class BounceHandler:
    """aiosmtpd handler: recipients are checked at RCPT, messages recorded at DATA."""

    def __init__(
        self,
        intake: BounceIntake,
        *,
        secret: bytes,
        bounce_domain: str = "",
        complaints_address: str = "",
    ) -> None:
        self._intake = intake
        self._secret = secret
        self._bounce_domain = bounce_domain.lower()
        self._complaints_address = complaints_address.lower()

    def accepts(self, address: str) -> bool:
        """The complaints address, or a return path at the bounce domain whose token verifies."""
        address = address.lower()
        if self._complaints_address and address == self._complaints_address:
            return True
        if not is_return_path(address):
            return False
        if self._bounce_domain and address.rsplit("@", 1)[1] != self._bounce_domain:
            return False
        match = find_return_path(self._secret, [address])
        return match is not None and match.job_id is not None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS} per message)"
        if not self.accepts(address):
            # The same answer for a forged token as for any other unknown mailbox.
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "surrogateescape")
        try:
            # Read once; recorded once per return path, each naming its own job.
            results = await asyncio.to_thread(
                self._intake.receive_mail_for_each, raw, list(envelope.rcpt_tos)
            )
        except Exception:
            log.exception("could not record a message from %s; asked to resend", session.peer)
            return "451 4.3.0 Temporary failure recording the message, try again later"
        if any(result.outcome == IntakeOutcome.TOO_COSTLY for result in results):
            log.warning("refused a message from %s: %s", session.peer, results[0].reason)
            return "554 5.6.0 Message refused: too costly to read"
        return "250 2.0.0 OK: recorded"


def make_smtp(handler: BounceHandler, *, hostname: str | None = None) -> SMTP:
    return SMTP(
        handler,
        hostname=hostname,
        data_size_limit=MAX_MESSAGE_BYTES,
        decode_data=False,
        enable_SMTPUTF8=True,
    )


async def serve_bounces(
    settings: Settings, intake: BounceIntake, *, host: str, port: int, stop: asyncio.Event
) -> None:
    handler = BounceHandler(
        intake,
        secret=settings.secret,
        bounce_domain=settings.bounce_domain,
        complaints_address=settings.complaints_address,
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: make_smtp(handler), host=host, port=port)
    address: Any = server.sockets[0].getsockname()
    print(f"edm bounces: listening on {address[0]}:{address[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def run_bounce_server(settings: Settings, intake: BounceIntake, *, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT; a message being recorded then is finished first."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signal_number, stop.set)
        await serve_bounces(settings, intake, host=host, port=port, stop=stop)

    asyncio.run(main())
