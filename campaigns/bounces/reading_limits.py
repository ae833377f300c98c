"""How much of a message that reached the bounce address is read, and what is refused unread.

Anyone can send mail to the bounce address, so every parse is bounded: the bytes parsed, the
header text read for addresses, the MIME parts and their nesting, the header blocks of a report
and the text the heuristic bounce parser sees. A bounce about one of our messages needs little:
its report parts come before the returned message, and of that only the headers matter.
"""

from __future__ import annotations

from campaigns.core.errors import InputError

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
"""Bounces carry the original message; ten megabytes is far above a campaign's size."""
MAX_PARSED_BYTES = 1024 * 1024
"""Parsed from the start of a message: the report parts and the returned message's headers.
The rest (the returned message's body) only goes into the fingerprint's digest."""
MAX_PARSED_LINES = 20_000
"""Of those bytes: the parser checks every line against each enclosing boundary, so its cost is
lines times nesting depth."""
MAX_HEADER_VALUE_CHARS = 8 * 1024
"""Of one header value, read for addresses, Message-IDs and status codes."""
MAX_HEADER_COPIES = 20
"""Copies of one header (Delivered-To, Received...) read for addresses."""
MAX_ADDRESSES_PER_HEADER = 50
MAX_MESSAGE_IDS = 20
"""Message-IDs read from In-Reply-To and References, each checked against its tag."""
MAX_MIME_PARTS = 200
"""Parts (and report header blocks, which the parser makes parts of) of one message."""
MAX_MIME_DEPTH = 16
"""A DSN is about five levels deep: report, returned message, its alternatives, their parts."""
MAX_CONTENT_TYPE_LINES = 64
"""``Content-Type:`` lines before parsing; nesting needs one per level, so this bounds depth
before the parser, whose cost grows with depth times lines, has run."""
MAX_HEADER_BLOCKS = 100
"""Per-recipient blocks of a delivery-status report (we send one recipient per message)."""
MAX_NONSTANDARD_BYTES = 32 * 1024
"""Of a message handed to the heuristic non-standard bounce parser, whose regexes scan it all."""


class MailTooCostly(InputError):
    """A message past one of the bounds above: refused without being read further."""


def check_message_size(raw: bytes) -> None:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MailTooCostly(f"message of {len(raw)} bytes (limit {MAX_MESSAGE_BYTES})")
