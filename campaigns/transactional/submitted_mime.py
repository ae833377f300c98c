"""A message submitted by SMTP is kept once, however many recipients it has: each recipient's
transactional message points at the one copy (``SubmittedMime``), found again by its hash when
the same bytes come back (an application resending after a lost answer)."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError

from campaigns.core.models import SubmittedMime, TransactionalMessage
from campaigns.core.storage import Database


def stored_mime(database: Database, raw: bytes) -> int:
    """The id of the copy of ``raw``, stored now unless it is there already."""
    digest = hashlib.sha256(raw).hexdigest()
    found = _find(database, digest)
    if found is not None:
        return found
    try:
        with database.session() as session:
            row = SubmittedMime(sha256=digest, raw=raw)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        found = _find(database, digest)  # another server process stored it first
        if found is None:
            raise
        return found


def forget_unused_mime(database: Database, mime_id: int) -> None:
    """Deletes the copy when no message points at it (every recipient was refused)."""
    with database.session() as session:
        session.execute(
            delete(SubmittedMime).where(
                SubmittedMime.id == mime_id,
                ~exists().where(TransactionalMessage.mime_id == mime_id),
            )
        )


def _find(database: Database, digest: str) -> int | None:
    with database.session() as session:
        return session.scalar(select(SubmittedMime.id).where(SubmittedMime.sha256 == digest))
