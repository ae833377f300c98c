"""Suppressing every address in a CSV file, all or nothing, with a report like ``lists import``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaigns.core.errors import CsvImportError, InputError
from campaigns.core.models import utc_now
from campaigns.core.spreadsheet_csv import original_cell
from campaigns.core.storage import Database
from campaigns.lists.csv_source import detect_layout, read_chunks
from campaigns.lists.fields import email_key, find_email_column, normalise_email
from campaigns.lists.importer import RowReport
from campaigns.lists.suppression import (
    SuppressionReason,
    insert_new_suppressions,
    parse_reason,
    suppression_row,
)


@dataclass(kw_only=True)
class SuppressionImportReport(RowReport):
    """Every data row is in one count: ``added``, ``already_suppressed``, ``duplicates`` (seen
    earlier in the file) or ``rejected`` (with its line and reason in ``errors``)."""

    added: int = 0
    already_suppressed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "added": self.added,
            "already_suppressed": self.already_suppressed,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors_as_dicts(),
        }


def import_suppressions(
    database: Database,
    path: Path,
    *,
    reason: SuppressionReason = SuppressionReason.MANUAL,
    encoding: str | None = None,
    chunk_rows: int = 20_000,
) -> SuppressionImportReport:
    """Suppress every address in the CSV ``path``, in one transaction.

    The file needs an address column (as for ``lists import``); ``reason`` and ``detail``
    columns, as ``edm suppression export`` writes them, override ``reason`` row by row.
    Raises CsvImportError, and adds nothing, when the file cannot be read to its end.
    """
    path = Path(path)
    layout = detect_layout(path, encoding)
    try:
        email_index = find_email_column(layout.field_names)
    except CsvImportError as error:
        raise CsvImportError(f"{path}: line 1: {error}") from None
    names = layout.field_names
    reason_index = names.index("reason") if "reason" in names else None
    detail_index = names.index("detail") if "detail" in names else None
    report = SuppressionImportReport(path=str(path))
    seen: set[str] = set()
    now = utc_now()
    with database.session() as session:
        for chunk in read_chunks(path, layout, chunk_rows):
            for line, problem in chunk.malformed:
                report.reject(line, problem)
            rows: list[dict[str, Any]] = []
            for line, values in zip(chunk.lines, chunk.rows, strict=True):
                raw_address = original_cell(values[email_index].strip())
                if not raw_address:
                    report.reject(line, "no email address")
                    continue
                try:
                    key = email_key(normalise_email(raw_address))
                    row_reason = reason
                    if reason_index is not None and values[reason_index].strip():
                        row_reason = parse_reason(values[reason_index], "reason")
                except InputError as error:
                    report.reject(line, f"{raw_address!r}: {error}")
                    continue
                if key in seen:
                    report.duplicates += 1
                    continue
                seen.add(key)
                detail = None
                if detail_index is not None:
                    detail = original_cell(values[detail_index].strip()) or None
                rows.append(suppression_row(key, row_reason, detail, now))
            added = insert_new_suppressions(session, rows)
            report.added += added
            report.already_suppressed += len(rows) - added
    report.errors.sort(key=lambda error: error.line)
    return report
