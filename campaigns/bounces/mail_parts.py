"""Small readers shared by the DSN, ARF and non-standard bounce parsers.

Everything here accepts whatever arrives: a missing part, a header that is not text or a field
in an unexpected shape gives an empty answer, never an exception.
"""

from __future__ import annotations

import email
import email.utils
import hashlib
import re
from email import policy
from email.message import Message
from email.parser import HeaderParser

_ADDRESS = re.compile(r"<?\s*([^\s<>;,\"]+@[^\s<>;,\"]+?)\s*>?\s*$")
_ORIGINAL_HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers")


def parse_message(raw: bytes) -> Message:
    # compat32 never raises on a malformed header; the modern policies may, when read.
    return email.message_from_bytes(raw, policy=policy.compat32)


def header_text(message: Message, name: str) -> str:
    """A header as one line of text ("" when absent), folding whitespace collapsed."""
    value = message.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())


def header_texts(message: Message, name: str) -> list[str]:
    return [" ".join(str(value).split()) for value in message.get_all(name) or []]


def typed_address(field: str) -> str | None:
    """The address in a DSN or ARF address field ("rfc822; a@b", "<a@b>", "a@b"), lower-cased."""
    value = field.rsplit(";", 1)[-1].strip() if field else ""
    match = _ADDRESS.search(value)
    return match.group(1).lower() if match else None


def header_addresses(message: Message, name: str) -> list[str]:
    """Every address in every copy of an address header (To, Delivered-To, Return-Path...)."""
    found = []
    for value in header_texts(message, name):
        for _display, address in email.utils.getaddresses([value]):
            if "@" in address:
                found.append(address.strip().lower())
    return found


def header_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = _part_text(part)
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser().parsestr(block) for block in blocks if block.strip()]


def returned_headers(message: Message) -> Message | None:
    """The headers of the original message a report returns (whole, or headers only)."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type in _ORIGINAL_HEADER_TYPES:
            return HeaderParser().parsestr(_part_text(part))
    return None


def report_part(message: Message, content_type: str) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def first_text(message: Message, *, max_chars: int = 8000) -> str:
    """The first text/plain part (or the body of a one-part message), as text."""
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() != "text/plain":
            continue
        return _part_text(part)[:max_chars]
    return ""


def fingerprint(raw: bytes, message: Message) -> str:
    """A digest that is the same for every copy of one message, however it travelled.

    Relays and mailboxes add headers (Received, Delivered-To, Return-Path) and may change line
    endings; the origin's identifying headers and the body do not change.
    """
    normalised = raw.replace(b"\r\n", b"\n")
    _headers, _separator, body = normalised.partition(b"\n\n")
    digest = hashlib.sha256()
    for name in ("Message-ID", "Date", "From", "Subject"):
        digest.update(header_text(message, name).encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body.rstrip(b"\n"))
    return digest.hexdigest()[:32]


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""
