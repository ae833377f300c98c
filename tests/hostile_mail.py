"""The worst messages we know how to send to a bounce address: each made to cost the parser
time growing faster than its size (or to blow its recursion), none carrying a valid token.

Shared by the tests (each must be read quickly and refused or classed right) and
``python -m bench.hostile_bounces`` (how long each takes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from campaigns.bounces.reading import MailKind

REFUSED = "refused"
"""Expected of a message past a bound: MailTooCostly, no reading."""


@dataclass(frozen=True)
class HostileMessage:
    name: str
    build: Callable[[int], bytes]
    """From a size factor: 1 is the tests' size, larger ones are for the benchmark."""
    expected: MailKind | str


def _dsn(blocks: bytes) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n" + blocks + b"\r\n--b--\r\n"
    )


def folded_to(scale: int) -> bytes:
    """A To header of megabytes folded over hundreds of thousands of lines."""
    return b"To: " + b"a,\r\n " * (300_000 * scale) + b"b\r\n\r\nhello\r\n"


def nested_comments_to(scale: int) -> bytes:
    """Comments in comments: the standard address parser recurses once per parenthesis."""
    return b"Delivered-To: " + b"(" * (200_000 * scale) + b"\r\n\r\nhello\r\n"


def address_without_at(scale: int) -> bytes:
    """A Final-Recipient with no '@': a backtracking address regex tries every start."""
    field = b"Final-Recipient: rfc822; " + b"a" * (200_000 * scale)
    return _dsn(field + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n")


def many_dsn_blocks(scale: int) -> bytes:
    """Thousands of per-recipient blocks in one delivery-status part."""
    block = b"Final-Recipient: rfc822; r%d@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    return _dsn(b"".join(block % number for number in range(5_000 * scale)))


def deep_mime(scale: int) -> bytes:
    """Multiparts nested thousands deep, then many short lines each checked at every level."""
    opening = b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n"
    depth = 2_000 * scale
    return b"".join(opening % (level, level) for level in range(depth)) + b"x\r\n" * 200_000


def many_parts(scale: int) -> bytes:
    """A digest of a hundred thousand empty parts, none with a Content-Type line to count."""
    return (
        b"Content-Type: multipart/digest; boundary=b\r\n\r\n"
        + b"--b\r\n\r\n" * (100_000 * scale)
        + b"--b--\r\n"
    )


def long_references(scale: int) -> bytes:
    """Tens of thousands of Message-IDs of our shape, each one an HMAC to check."""
    message_id = b"<0f0e7c1a-8a53-4c0e-9d3f-6f7b2b7d1c11.42.abcdefgh@news.example.com> "
    return b"References: " + message_id * (50_000 * scale) + b"\r\n\r\nhello\r\n"


def long_from_for_the_heuristic_parser(scale: int) -> bytes:
    """A bounce-like message whose From the heuristic parser hands to the standard address
    parser, slow on a long run of "a@"."""
    return b"From: " + b"a@" * (30_000 * scale) + b"\r\nSubject: failure notice\r\n\r\nbody\r\n"


def oversized(scale: int) -> bytes:
    """Over the ten megabytes a bounce may have."""
    return b"Subject: big\r\n\r\n" + b"x" * (11 * 1024 * 1024 * scale)


HOSTILE_MESSAGES = (
    HostileMessage("folded To header", folded_to, MailKind.UNRECOGNISED),
    HostileMessage("nested comments in an address", nested_comments_to, MailKind.UNRECOGNISED),
    HostileMessage("Final-Recipient without @", address_without_at, MailKind.DSN),
    HostileMessage("thousands of DSN blocks", many_dsn_blocks, REFUSED),
    HostileMessage("MIME nested thousands deep", deep_mime, REFUSED),
    HostileMessage("a digest of 100,000 parts", many_parts, REFUSED),
    HostileMessage("50,000 References", long_references, MailKind.UNRECOGNISED),
    HostileMessage(
        "long From for the heuristic parser",
        long_from_for_the_heuristic_parser,
        MailKind.UNRECOGNISED,
    ),
    HostileMessage("over 10 MB", oversized, REFUSED),
)


def forged_complaint(recipient: str, *, return_path: str, reporter: str = "spoof.example") -> bytes:
    """An abuse report naming ``recipient`` (and ``return_path``), returning no message of ours."""
    return (
        f"From: Feedback <feedback@{reporter}>\r\nTo: fbl@bounces.example.com\r\n"
        f"Subject: complaint\r\nMessage-ID: <arf-1@{reporter}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
        "--r\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{return_path}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n\r\n"
        "--r--\r\n"
    ).encode()
