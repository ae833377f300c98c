"""Lists that hold no audience: rows kept only so the jobs that name them stay whole.

A job points at its recipient row. When a person leaves a list, or is erased, rows that jobs
still point at move to one of these lists instead of being deleted, so every campaign keeps its
history and counts: ``(removed from list N)`` keeps the address (the person's history is still
theirs to see), ``(erased people)`` keeps nothing of it. No campaign can be made from them and
no page lists them; their names start with ``(``, which an imported list's name may not.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.core.errors import InputError
from campaigns.core.models import RecipientList

HOLDING_PREFIX = "("
ERASED_LIST_NAME = "(erased people)"
ERASED_ROW_KEY_PREFIX = "(erased "
"""The ``email_key`` of an erased person's row starts so: no address does."""


def erased_row_key(random_hex: str) -> str:
    return f"{ERASED_ROW_KEY_PREFIX}{random_hex})"


def is_erased_row_key(key: str) -> bool:
    return key.startswith(ERASED_ROW_KEY_PREFIX)


def removed_list_name(list_id: int) -> str:
    return f"(removed from list {list_id})"


def is_holding_list(name: str) -> bool:
    return name.startswith(HOLDING_PREFIX)


def check_audience_list_name(name: str, field: str = "list") -> None:
    if is_holding_list(name):
        raise InputError(f"{field}: a list name may not start with {HOLDING_PREFIX!r}")


def holding_list(session: Session, name: str) -> RecipientList:
    """The holding list ``name``, created when missing."""
    found = session.scalar(select(RecipientList).where(RecipientList.name == name))
    if found is None:
        found = RecipientList(name=name, field_names=[])
        session.add(found)
        session.flush()
    return found
