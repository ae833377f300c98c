"""SMTP replies as data, and the RFC 3463 enhanced status code inside their text."""

from __future__ import annotations

import re
from typing import NamedTuple

# RFC 3463 class.subject.detail opening the reply text: "5.1.1 <x@y>: Recipient address rejected"
_ENHANCED_STATUS = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


class SmtpReply(NamedTuple):
    code: int
    message: str

    @property
    def status(self) -> str | None:
        return enhanced_status(self.message)

    def __str__(self) -> str:
        return one_line(f"{self.code} {self.message}")


def enhanced_status(reply_message: str) -> str | None:
    """``"5.1.1"`` from ``"5.1.1 <x@y>: Recipient address rejected"``; None when there is none."""
    match = _ENHANCED_STATUS.match(reply_message)
    if match is None:
        return None
    return ".".join(match.groups())


def one_line(text: str, *, max_chars: int = 500) -> str:
    """Multi-line replies and error texts folded into one line, as stored and shown."""
    folded = " ".join(text.split())
    return folded if len(folded) <= max_chars else folded[: max_chars - 3] + "..."
