"""Small readers shared by the DSN, ARF and non-standard bounce parsers.

Everything here accepts whatever arrives: a missing part, a header that is not text or a field
in an unexpected shape gives an empty answer, never an exception; only a message past the bounds
of :mod:`campaigns.bounces.reading_limits` is refused, with :class:`MailTooCostly`.
"""

from __future__ import annotations

import email
import hashlib
import re
from email import policy
from email.message import Message
from email.parser import HeaderParser

from campaigns.bounces.address_scan import addresses_in
from campaigns.bounces.reading_limits import (
    MAX_CONTENT_TYPE_LINES,
    MAX_HEADER_BLOCKS,
    MAX_HEADER_COPIES,
    MAX_HEADER_VALUE_CHARS,
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MAX_PARSED_BYTES,
    MAX_PARSED_LINES,
    MailTooCostly,
    check_message_size,
)

_ORIGINAL_HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers")


def parse_message(raw: bytes, *, max_bytes: int = MAX_PARSED_BYTES) -> Message:
    """The first ``max_bytes`` (and ``MAX_PARSED_LINES``) of a message, parsed; MailTooCostly
    past the size and MIME bounds."""
    check_message_size(raw)
    window = _first_lines(raw[:max_bytes], MAX_PARSED_LINES)
    content_types = window.lower().count(b"\ncontent-type:") + window[:13].lower().startswith(
        b"content-type:"
    )
    if content_types > MAX_CONTENT_TYPE_LINES:
        raise MailTooCostly(f"{content_types} Content-Type lines (limit {MAX_CONTENT_TYPE_LINES})")
    # compat32 never raises on a malformed header; the modern policies may, when read.
    message = email.message_from_bytes(window, policy=policy.compat32)
    _check_mime_tree(message)
    return message


def _first_lines(data: bytes, count: int) -> bytes:
    end = -1
    for _ in range(count):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return data
    return data[: end + 1]


def _check_mime_tree(message: Message) -> None:
    parts = 0
    pending: list[tuple[Message, int]] = [(message, 1)]
    while pending:
        part, depth = pending.pop()
        parts += 1
        if parts > MAX_MIME_PARTS:
            raise MailTooCostly(f"more than {MAX_MIME_PARTS} MIME parts")
        if depth > MAX_MIME_DEPTH:
            raise MailTooCostly(f"MIME parts nested deeper than {MAX_MIME_DEPTH}")
        payload = part.get_payload()
        if isinstance(payload, list):
            pending.extend((child, depth + 1) for child in payload if isinstance(child, Message))


def with_short_headers(message: Message) -> Message:
    """``message`` with every header value cut to ``MAX_HEADER_VALUE_CHARS``, for readers
    (the heuristic bounce parser) that hand whole header values to the standard address
    parser, whose time grows with the square of a crafted value."""
    for part in message.walk():
        fields = [(name, str(value)) for name, value in part.items()]
        if all(len(value) <= MAX_HEADER_VALUE_CHARS for _name, value in fields):
            continue
        for name in dict.fromkeys(part.keys()):
            del part[name]
        for name, value in fields:
            part[name] = value[:MAX_HEADER_VALUE_CHARS]
    return message


def header_text(message: Message, name: str) -> str:
    """A header as one line of text ("" when absent), folding whitespace collapsed, its first
    ``MAX_HEADER_VALUE_CHARS`` characters only."""
    value = message.get(name)
    if value is None:
        return ""
    return _one_line(value)


def header_texts(message: Message, name: str) -> list[str]:
    return [_one_line(value) for value in (message.get_all(name) or [])[:MAX_HEADER_COPIES]]


def _one_line(value: object) -> str:
    return " ".join(str(value)[:MAX_HEADER_VALUE_CHARS].split())


def header_addresses(message: Message, name: str) -> list[str]:
    """Every address in every copy of an address header (To, Delivered-To, Return-Path...)."""
    return [address for value in header_texts(message, name) for address in addresses_in(value)]


def header_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
    else:
        texts = re.split(r"\r?\n[ \t]*\r?\n", _part_text(part).strip())
        texts = [text for text in texts[: MAX_HEADER_BLOCKS + 1] if text.strip()]
        blocks = [HeaderParser().parsestr(text) for text in texts]
    if len(blocks) > MAX_HEADER_BLOCKS:
        raise MailTooCostly(f"more than {MAX_HEADER_BLOCKS} header blocks in a report part")
    return blocks


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
