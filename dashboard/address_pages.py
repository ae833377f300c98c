"""Pages of rows in address order, forward and back, with where the page sits among the matches.

A search matches any part of an address (``smith`` finds ``anna.smith@…``). Pages are keyed by
address rather than by offset, so rows added or removed meanwhile never shift a page; the
counts (``total``, ``first``) are two counts of the same matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

MAX_PAGE = 200


@dataclass(frozen=True)
class PagePlace:
    next_after: str | None
    """Pass as ``after`` for the next page; None on the last one."""
    previous_before: str | None
    """Pass as ``before`` for the page before; None on the first one."""
    total: int
    """Rows matching the search and filters, on every page."""
    first: int
    """Position (from 1) of this page's first row among them; 0 when the page is empty."""


def address_page(
    session: Session,
    query: Any,
    key: Any,
    *,
    contains: str = "",
    after: str = "",
    before: str = "",
    limit: int = 50,
) -> tuple[list[Any], PagePlace]:
    """Run ``query`` (whose rows end with ``key``, the lower-cased address) for one page."""
    limit = max(1, min(limit, MAX_PAGE))
    needle = contains.strip().lower()
    if needle:
        query = query.where(key.contains(needle, autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if before and not after:
        page = query.where(key < before.lower()).order_by(key.desc()).limit(limit + 1)
        rows = list(session.execute(page).all())
        earlier = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        later = bool(rows)
    else:
        page = query.where(key > after.lower()) if after else query
        rows = list(session.execute(page.order_by(key).limit(limit + 1)).all())
        later = len(rows) > limit
        rows = rows[:limit]
        earlier = bool(after)
    first = 0
    if rows:
        counted = select(func.count()).select_from(query.where(key < rows[0][-1]).subquery())
        first = (session.scalar(counted) or 0) + 1
    return rows, PagePlace(
        next_after=rows[-1][-1] if later and rows else None,
        previous_before=rows[0][-1] if earlier and rows and first > 1 else None,
        total=total,
        first=first,
    )
