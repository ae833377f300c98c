"""SMTP replies as data, and the one parser of RFC 3463 enhanced status codes in their text.

An enhanced status code is ``class.subject.detail`` ("5.1.1"). A relay's reply puts it first
(:func:`enhanced_status`); a DSN, a bounce or a provider's payload may put it anywhere in a
diagnostic (:func:`find_status`). Both read it the same way: leading zeros dropped, so "5.01.01"
and "5.1.1" are one code to every classifier.
"""

from __future__ import annotations

import re

_STATUS_CODE = r"([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])"
_STATUS_AT_START = re.compile(r"\s*" + _STATUS_CODE)
_STATUS_ANYWHERE = re.compile(r"(?<![\d.])" + _STATUS_CODE)
_REPLY_CODE_ANYWHERE = re.compile(r"(?<!\d)([245]\d\d)(?:[ -]|$)")


def enhanced_status(reply_message: str) -> str | None:
    """``"5.1.1"`` from ``"5.1.1 <x@y>: Recipient address rejected"``; None when there is none."""
    return _status_text(_STATUS_AT_START.match(reply_message))


def find_status(text: str) -> str | None:
    """The first enhanced status code in ``text`` ("5.1.1" in "smtp; 550 5.1.1 <a@b>: ...")."""
    return _status_text(_STATUS_ANYWHERE.search(text or ""))


def find_smtp_code(text: str) -> int | None:
    """The first three-digit SMTP reply code in a diagnostic ("smtp; 550 ..." gives 550)."""
    match = _REPLY_CODE_ANYWHERE.search(text or "")
    return int(match.group(1)) if match else None


def one_line(text: str, *, max_chars: int = 500) -> str:
    """Multi-line replies and error texts folded into one line, as stored and shown."""
    folded = " ".join(text.split())
    return folded if len(folded) <= max_chars else folded[: max_chars - 3] + "..."


def _status_text(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    return ".".join(str(int(part)) for part in match.groups())
