"""``edm bounces poll``: read bounces from a mailbox over IMAP or POP3.

For a bounce domain whose mail lands in a hosted mailbox instead of ``edm bounces serve``.
Each message is handed to the intake and then removed from the mailbox: POP3 ``DELE`` (done at
``QUIT``), IMAP ``\\Deleted`` plus ``EXPUNGE`` at the end of the pass. Ignored messages
(automatic replies, unrecognised mail) are removed too, or they would be read on every pass.
A message is removed only after the intake returned: when the database fails the pass stops and
that message stays for the next one; a message read twice is recorded once. The intake reads
each message as ``edm bounces serve`` does, bounded and in a CPU-limited child; a message refused
as too costly to read is removed with a log line like any other ignored one.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import poplib
import re
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import SQLAlchemyError

from campaigns.bounces.intake import BounceIntake
from campaigns.core.errors import InputError, ServiceUnavailable

log = logging.getLogger("edm.bounces")

DEFAULT_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}
MAX_MESSAGES_PER_PASS = 500
"""A pass ends after this many; the rest wait for the next pass, so a flood cannot stall it."""
_FETCHED_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True)
class MailboxUrl:
    scheme: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    """IMAP only."""

    @property
    def protocol(self) -> str:
        return "imap" if self.scheme.startswith("imap") else "pop3"

    @property
    def uses_tls(self) -> bool:
        return self.scheme.endswith("s")

    def redacted(self) -> str:
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}"


def parse_mailbox_url(url: str, *, source: str = "--url") -> MailboxUrl:
    """``imaps://user:pass@host:993/INBOX``, ``imap://``, ``pop3://``, ``pop3s://``; errors name
    ``source``, where the URL came from, and never repeat the password."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        found = f"{scheme}://" if scheme else "no scheme"
        raise InputError(f"{source}: expected imap://, imaps://, pop3:// or pop3s://, got {found}")
    if not parts.hostname or parts.username is None or parts.password is None:
        raise InputError(f"{source}: needs user, password and host: {scheme}://user:pass@host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        host = parts.netloc.rsplit("@", 1)[-1]
        raise InputError(f"{source}: invalid port in {scheme}://...@{host}") from None
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return MailboxUrl(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password),
        folder=folder,
    )


@dataclass
class PollSummary:
    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items()))
        return f"{self.read} messages read" + (f": {counts}" if counts else "")


def poll_mailbox(
    mailbox: MailboxUrl,
    intake: BounceIntake,
    *,
    timeout_s: float = 60.0,
    max_messages: int = MAX_MESSAGES_PER_PASS,
) -> PollSummary:
    """One pass over the mailbox. Raises ServiceUnavailable when the server cannot be used."""
    poll = _poll_imap if mailbox.protocol == "imap" else _poll_pop3
    try:
        return poll(mailbox, intake, timeout_s, max_messages)
    except (OSError, imaplib.IMAP4.error, poplib.error_proto) as error:
        raise ServiceUnavailable(f"mailbox {mailbox.redacted()}: {_one_line(error)}") from None
    except SQLAlchemyError as error:
        # The message being recorded stays in the mailbox for the next pass.
        raise ServiceUnavailable(f"database: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).splitlines()
    return (text[0].strip() if text else "") or type(error).__name__


def run_poller(
    mailbox: MailboxUrl,
    intake: BounceIntake,
    *,
    interval_s: float,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Poll every ``interval_s`` until ``stop()``; a failed pass is logged and tried again."""
    while not stop():
        try:
            summary = poll_mailbox(mailbox, intake)
            if summary.read:
                log.info("%s: %s", mailbox.redacted(), summary.describe())
        except Exception as error:
            log.warning(
                "%s: pass failed, trying again in %gs: %s", mailbox.redacted(), interval_s, error
            )
        deadline = time.monotonic() + interval_s
        while not stop() and time.monotonic() < deadline:
            time.sleep(min(0.5, interval_s))


def _poll_imap(
    mailbox: MailboxUrl, intake: BounceIntake, timeout_s: float, max_messages: int
) -> PollSummary:
    summary = PollSummary()
    if mailbox.uses_tls:
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=ssl.create_default_context(), timeout=timeout_s
        )
    else:
        client = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout_s)
    try:
        client.login(mailbox.user, mailbox.password)
        status, _ = client.select(_quoted(mailbox.folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot open folder {mailbox.folder!r}")
        _status, data = client.uid("SEARCH", "UNDELETED")
        # Decoded here because imaplib's arguments are text; a UID is ASCII digits either way.
        uids = [uid.decode("ascii") for uid in (data[0] or b"").split()[:max_messages]]
        try:
            for uid in uids:
                raw = _fetch_imap(client, uid)
                if raw is None:
                    continue
                result = intake.receive_mail(raw)
                summary.read += 1
                summary.outcomes[str(result.outcome)] += 1
                client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        finally:
            # What was recorded leaves the mailbox even when a later message failed.
            client.expunge()
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    return summary


def _fetch_imap(client: imaplib.IMAP4, uid: str) -> bytes | None:
    _status, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _poll_pop3(
    mailbox: MailboxUrl, intake: BounceIntake, timeout_s: float, max_messages: int
) -> PollSummary:
    summary = PollSummary()
    if mailbox.uses_tls:
        client: poplib.POP3 = poplib.POP3_SSL(
            mailbox.host, mailbox.port, context=ssl.create_default_context(), timeout=timeout_s
        )
    else:
        client = poplib.POP3(mailbox.host, mailbox.port, timeout=timeout_s)
    try:
        client.user(mailbox.user)
        client.pass_(mailbox.password)
        count, _size = client.stat()
        for number in range(1, min(count, max_messages) + 1):
            _response, lines, _octets = client.retr(number)
            result = intake.receive_mail(b"\r\n".join(lines) + b"\r\n")
            summary.read += 1
            summary.outcomes[str(result.outcome)] += 1
            client.dele(number)
    finally:
        # QUIT commits the deletions of what was recorded, even after a failure.
        with contextlib.suppress(OSError, poplib.error_proto):
            client.quit()
    return summary
