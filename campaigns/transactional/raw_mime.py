"""Messages an application submits whole (SMTP submission): kept byte for byte.

Nothing of the message is parsed into headers the sender writes, so nothing in it can inject one.
Only three things change, as a submission server's do (RFC 6409 section 8): ``Bcc`` is taken out
(every recipient gets a copy of their own), the application's ``Message-ID`` and any
``Return-Path`` are replaced by the job's tagged Message-ID (bounces and complaints then name
the job) and the VERP return path the worker gives in the envelope, and a ``Date`` is added if
there was none. The worker signs the result (DKIM) like every other message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses
from typing import Any

from campaigns.content.dkim import DkimSigner, header_fields
from campaigns.content.message import MessageSkeleton
from campaigns.core.errors import InputError

MAX_HEADER_BYTES = 128 * 1024
"""The header section's bound: parsing stops there, a longer one is refused."""
MAX_FROM_ADDRESSES = 10
REPLACED_FIELDS = frozenset({b"message-id", b"return-path", b"bcc"})
_BARE_LINE_END = re.compile(rb"\r?\n")


def canonical_message(raw: bytes) -> bytes:
    """CRLF line endings and a blank line after the header: the form SMTP carries and DKIM signs.

    InputError when the header section is over ``MAX_HEADER_BYTES`` or its first line is not a
    header field."""
    message = _BARE_LINE_END.sub(b"\r\n", raw)
    separator = message.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES + 4)
    if separator < 0:
        if len(message) > MAX_HEADER_BYTES:
            raise InputError(f"message: header section over {MAX_HEADER_BYTES} bytes")
        message = message if message.endswith(b"\r\n") else message + b"\r\n"
        message += b"\r\n"
        separator = len(message) - 4
    first = message[: message.find(b"\r\n")]
    if b":" not in first or first[:1] in (b" ", b"\t"):
        raise InputError("message: does not start with a header field")
    return message


def from_addresses(message: bytes) -> list[str]:
    """The addresses of the ``From`` field(s) of a canonical message."""
    separator = message.find(b"\r\n\r\n")
    values = [
        value.decode("utf-8", "replace")
        for field in header_fields(message[:separator])
        for name, _, value in [field.partition(b":")]
        if name.strip().lower() == b"from"
    ]
    addresses = [address for _name, address in getaddresses(values) if address]
    return addresses[: MAX_FROM_ADDRESSES + 1]


@dataclass(frozen=True)
class RawMimePipeline:
    """A stored message's way to the relay; the counterpart of ``MessagePipeline``."""

    raw: bytes
    skeleton: MessageSkeleton
    """Gives the Message-ID's domain and tag and the default bounce domain (the sender's)."""
    signer: DkimSigner | None = None

    def build(self, *, job_id: int, date: datetime | None = None) -> bytes:
        message = canonical_message(self.raw)
        separator = message.find(b"\r\n\r\n")
        kept = [
            field
            for field in header_fields(message[:separator])
            if field.partition(b":")[0].strip().lower() not in REPLACED_FIELDS
        ]
        added = [b"Message-ID: " + self.skeleton.message_id(job_id).encode()]
        if not any(field[:5].lower() == b"date:" for field in kept):
            added.append(b"Date: " + format_datetime(date or datetime.now(UTC)).encode())
        built = b"\r\n".join([*added, *kept]) + message[separator:]
        return built if self.signer is None else self.signer.sign(built)

    async def message_for(self, *, job_id: int, email: str, fields: Any) -> bytes:
        """As ``MessagePipeline.message_for``: the same message whoever the recipient is."""
        return self.build(job_id=job_id)
