"""The failure listing as a readable table or as CSV a spreadsheet opens safely, streamed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TextIO

from campaigns.core import spreadsheet_csv as csv_export
from campaigns.lifecycle.failures import UndeliveredRecipient

COLUMNS = (
    "email",
    "state",
    "class",
    "attempts",
    "last_code",
    "enhanced_status",
    "next_attempt_at",
    "last_reply",
)
_TABLE_HEADERS = ("email", "state", "class", "attempts", "code", "status", "next attempt", "reply")
_TABLE_WIDTHS = (32, 10, 11, 8, 4, 7, 20)
"""Every column but the reply, which comes last and is never cut."""


def write_csv(recipients: Iterable[UndeliveredRecipient], out: TextIO) -> int:
    """Every cell goes through ``csv_export.safe_cell``: replies are written by strangers."""
    rows = (_cells(recipient, iso=True) for recipient in recipients)
    return csv_export.write_csv(rows, COLUMNS, out)


def write_table(recipients: Iterable[UndeliveredRecipient], out: TextIO) -> int:
    count = 0
    for recipient in recipients:
        if count == 0:
            out.write(_table_line(_TABLE_HEADERS))
        out.write(_table_line(_cells(recipient, iso=False)))
        count += 1
    return count


def _cells(recipient: UndeliveredRecipient, *, iso: bool) -> list[str]:
    return [
        recipient.email,
        recipient.state,
        str(recipient.reply_class or ""),
        str(recipient.attempts),
        "" if recipient.last_code is None else str(recipient.last_code),
        recipient.last_status or "",
        _moment(recipient.next_attempt_at, iso=iso),
        recipient.last_reply or "",
    ]


def _moment(moment: datetime | None, *, iso: bool) -> str:
    if moment is None:
        return ""
    return moment.isoformat() if iso else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _table_line(cells: Iterable[str]) -> str:
    *fixed, reply = cells
    padded = [cell.ljust(width) for cell, width in zip(fixed, _TABLE_WIDTHS, strict=True)]
    # Replies are folded to one line when stored; control characters would still garble it.
    shown_reply = "".join(char if char.isprintable() else " " for char in reply)
    return "  ".join([*padded, shown_reply]).rstrip() + "\n"
