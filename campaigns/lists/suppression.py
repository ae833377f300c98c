"""The suppression list: addresses never mailed again, whatever list or campaign they are in.

An address is suppressed by its ``email_key``. Import keeps suppressed addresses out of lists
(:mod:`campaigns.lists.importer`) and delivery checks again when it claims each job
(:func:`campaigns.jobs.job_store.claim_jobs`), so an address suppressed mid-campaign is not
sent either.
An address already suppressed keeps its first reason and date: suppressing it again changes
nothing, and an unsubscribe stays an unsubscribe.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from campaigns.core.batching import chunked
from campaigns.core.errors import InputError, NotFound
from campaigns.core.models import Suppression, utc_now
from campaigns.core.storage import Database, conflict_insert, rows_matched
from campaigns.lists.fields import email_key, normalise_email

MAX_DETAIL_CHARS = 2000
EXPORT_COLUMNS = ("email", "reason", "detail", "created_at")


class SuppressionReason(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    ERASED = "erased"
    """Only a keyed hash is kept (``erased_addresses``); set by erasure, never by hand."""


SETTABLE_REASONS = tuple(
    reason for reason in SuppressionReason if reason != SuppressionReason.ERASED
)


TRANSACTIONAL_CATEGORY = "transactional"
"""The category of one-to-one mail a person asked for (codes, resets, receipts)."""


def suppression_blocks(reason: str, category: str | None) -> bool:
    """Whether an address suppressed for ``reason`` is kept from mail of ``category`` (None for a
    campaign). An unsubscribe is from marketing: the password reset a person asked for still
    goes. Hard bounces, complaints and manual entries stop everything."""
    return not (category == TRANSACTIONAL_CATEGORY and reason == SuppressionReason.UNSUBSCRIBE)


@dataclass(frozen=True)
class SuppressedAddress:
    email_key: str
    reason: str
    detail: str | None
    created_at: datetime


def parse_reason(value: str, what: str = "--reason") -> SuppressionReason:
    try:
        reason = SuppressionReason(value.strip().lower())
    except ValueError:
        reason = None
    if reason not in SETTABLE_REASONS:
        choices = ", ".join(reason.value for reason in SETTABLE_REASONS)
        raise InputError(f"{what}: {value!r} is not one of {choices}") from None
    return reason


def add_suppressions(
    database: Database,
    addresses: Iterable[str],
    *,
    reason: SuppressionReason,
    detail: str | None = None,
) -> int:
    """Suppress ``addresses`` (as stored on recipients, or as a person typed them); returns how
    many were not suppressed before. Raises InputError, adding none, for an invalid address."""
    keys: dict[str, None] = {}
    for address in addresses:
        try:
            keys[email_key(normalise_email(address.strip()))] = None
        except InputError as error:
            raise InputError(f"{address!r}: {error}") from None
    now = utc_now()
    rows = [suppression_row(key, reason, detail, now) for key in keys]
    with database.session() as session:
        return insert_new_suppressions(session, rows)


def remove_suppression(database: Database, address: str) -> None:
    """Take ``address`` off the list. Its jobs already marked ``suppressed`` stay so, and a list
    import that kept it out must be run again to bring it back. Raises NotFound when absent."""
    keys = {address.strip().lower()}
    # Stored keys are normalised; the key as typed is tried too, for one stored otherwise.
    with contextlib.suppress(InputError):
        keys.add(email_key(normalise_email(address.strip())))
    with database.session() as session:
        result = session.execute(delete(Suppression).where(Suppression.email_key.in_(keys)))
        if rows_matched(result) == 0:
            raise NotFound(f"{address.strip()!r} is not on the suppression list")


def iter_suppressions(database: Database, *, page_rows: int = 1000) -> Iterator[SuppressedAddress]:
    """Every suppressed address in ``email_key`` order, read a page at a time."""
    after = ""
    while True:
        with database.session() as session:
            page = session.execute(
                select(
                    Suppression.email_key,
                    Suppression.reason,
                    Suppression.detail,
                    Suppression.created_at,
                )
                .where(Suppression.email_key > after)
                .order_by(Suppression.email_key)
                .limit(page_rows)
            ).all()
        for row in page:
            yield SuppressedAddress(row.email_key, row.reason, row.detail, row.created_at)
        if len(page) < page_rows:
            return
        after = page[-1].email_key


def suppression_row(
    key: str, reason: SuppressionReason, detail: str | None, now: datetime
) -> dict[str, Any]:
    if detail is not None:
        detail = detail[:MAX_DETAIL_CHARS]
    return {"email_key": key, "reason": str(reason), "detail": detail, "created_at": now}


def insert_new_suppressions(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose key is not suppressed yet; returns how many that was."""
    added = 0
    for batch in chunked(list(rows)):
        keys = [row["email_key"] for row in batch]
        existing = set(
            session.scalars(select(Suppression.email_key).where(Suppression.email_key.in_(keys)))
        )
        new_rows = [row for row in batch if row["email_key"] not in existing]
        if not new_rows:
            continue
        # Another process may suppress the same address between the lookup and the insert.
        session.execute(conflict_insert(session, Suppression).on_conflict_do_nothing(), new_rows)
        added += len(new_rows)
    return added
