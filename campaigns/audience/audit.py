"""The audit log of actions on people's data: who and when, never whose address."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from campaigns.core.models import AuditEntry, utc_now

log = logging.getLogger("edm.audit")


def record_audit(session: Session, action: str, actor: str, detail: dict[str, Any]) -> None:
    """Adds the entry to ``session`` (committed with the action itself) and logs it."""
    session.add(AuditEntry(action=action, actor=actor[:400], occurred_at=utc_now(), detail=detail))
    log.info("%s by %s: %s", action, actor, detail)
