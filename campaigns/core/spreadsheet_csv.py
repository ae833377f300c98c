"""CSV files that spreadsheets open safely, and reading such cells back.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula. Addresses may legally start with ``-``, ``+`` or ``=``, and relay
replies and bounce details are written by strangers, so every exported cell goes through
``safe_cell``, which puts a ``'`` in front of such cells, as OWASP advises for CSV injection.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from campaigns.core.errors import InputError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as CSV text a spreadsheet shows as text: ``None`` is empty, datetimes ISO 8601,
    and text that starts like a formula gets a leading ``'``."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def original_cell(text: str) -> str:
    """The inverse of ``safe_cell`` for text: a file this project exported can be read back."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


def write_csv(rows: Iterable[Sequence[object]], header: Sequence[str], stream: TextIO) -> int:
    """Write ``header`` and ``rows`` through ``safe_cell``, streamed; returns the row count."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([safe_cell(name) for name in header])
    count = 0
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        count += 1
    return count


def write_csv_file(path: Path, rows: Iterable[Sequence[object]], header: Sequence[str]) -> int:
    """``write_csv`` into ``path`` (UTF-8), which appears only once complete."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as stream:
            count = write_csv(rows, header, stream)
        os.replace(temporary, path)
    except OSError as error:
        raise InputError(f"{path}: cannot write: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return count
