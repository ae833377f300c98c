"""What a bounce or complaint does to its job, the campaign's counters and the suppression list.

- A complaint: a ``complained`` event, and the address suppressed at once (reason complaint).
- A hard bounce: a ``bounced`` event; a job the relay had taken (``sent``, or ``unknown``, which
  the bounce proves it took) becomes ``bounced``; the address is suppressed (hard_bounce).
- A soft bounce: a ``bounced`` event; the address is suppressed (hard_bounce, with the count in
  the detail) once it has ``soft_bounce_limit`` soft bounces within ``soft_bounce_days``.
- A policy block (5.7.x): a ``bounced`` event only; the sender must fix its own setup.

Everything happens in the caller's transaction with the job's row locked, so two copies of one
report arriving at once are recorded once: a report already on the job (same ``dedup_key``)
changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiosmtplib import SMTPStatus
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.core.events import record_event
from campaigns.core.models import EventKind, Job, JobEvent, JobState, Recipient, utc_now
from campaigns.core.reply_classes import ReplyClass, bounce_event_class
from campaigns.core.smtp_replies import find_smtp_code
from campaigns.core.storage import rows_matched
from campaigns.lists.holding_lists import is_erased_row_key
from campaigns.lists.suppression import SuppressionReason, insert_new_suppressions, suppression_row

BOUNCE_COUNTER = {
    ReplyClass.HARD_BOUNCE: "bounces_hard",
    ReplyClass.SOFT_BOUNCE: "bounces_soft",
    ReplyClass.POLICY: "bounces_policy",
}
_BOUNCED_FROM_STATES = (JobState.SENT, JobState.UNKNOWN)
_FEEDBACK_KINDS = (EventKind.BOUNCED, EventKind.COMPLAINED)


@dataclass(frozen=True)
class BouncePolicy:
    soft_bounce_limit: int = 3
    """Soft bounces of one address, within ``soft_bounce_days``, that suppress it."""
    soft_bounce_days: float = 7.0


@dataclass(frozen=True)
class Feedback:
    """One bounce or complaint about one recipient's message, from whichever intake."""

    kind: EventKind
    """``EventKind.BOUNCED`` or ``EventKind.COMPLAINED``."""
    dedup_key: str
    """The same for every copy of the same report (a digest, or the provider's event id)."""
    source: str
    """"dsn", "arf", "nonstandard", "ses", "sendgrid", "mailgun", "postmark"."""
    bounce_class: ReplyClass | None = None
    """``HARD_BOUNCE``, ``SOFT_BOUNCE`` or ``POLICY`` for a bounce; None for a complaint."""
    status: str | None = None
    diagnostic: str = ""
    reported_recipient: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def event_detail(self, *, personal: bool = True) -> dict[str, Any]:
        """What the event keeps; without ``personal``, only the status and class, no texts."""
        detail: dict[str, Any] = {"dedup_key": self.dedup_key, "source": self.source}
        if self.bounce_class is not None:
            detail["class"] = bounce_event_class(self.bounce_class)
        if self.status:
            detail["status"] = self.status
        if not personal:
            return detail
        if self.diagnostic:
            detail["diagnostic"] = self.diagnostic[:1000]
        if self.reported_recipient:
            detail["recipient"] = self.reported_recipient
        detail.update({key: value for key, value in self.extra.items() if value})
        return detail


class Applied(enum.StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class AppliedFeedback:
    applied: Applied
    job_id: int
    campaign_id: int
    email_key: str
    suppressed_as: str | None = None
    """The suppression reason when this report put the address on the list."""
    job_bounced: bool = False


def apply_feedback(
    session: Session, job_id: int, feedback: Feedback, policy: BouncePolicy
) -> AppliedFeedback:
    row = session.execute(
        select(Job.id, Job.campaign_id, Job.state, Recipient.email_key)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(Job.id == job_id)
        .with_for_update(of=Job)
    ).one()
    if _already_recorded(session, job_id, feedback.dedup_key):
        return AppliedFeedback(Applied.DUPLICATE, job_id, row.campaign_id, row.email_key)
    counters: tuple[str, ...] = ()
    if feedback.bounce_class is not None:
        counters = (BOUNCE_COUNTER[feedback.bounce_class],)
    now = utc_now()
    erased = is_erased_row_key(row.email_key)
    record_event(
        session,
        job_id=job_id,
        campaign_id=row.campaign_id,
        kind=feedback.kind,
        # A report about an erased person still counts, but its texts would name them again.
        detail=feedback.event_detail(personal=not erased),
        occurred_at=now,
        extra_counters=counters,
    )
    suppression: tuple[SuppressionReason, str] | None = None
    job_bounced = False
    if feedback.kind == EventKind.COMPLAINED:
        suppression = (SuppressionReason.COMPLAINT, f"{feedback.source} complaint")
    elif feedback.bounce_class == ReplyClass.HARD_BOUNCE:
        job_bounced = _mark_bounced(session, job_id, feedback)
        suppression = (SuppressionReason.HARD_BOUNCE, _describe(feedback))
    elif feedback.bounce_class == ReplyClass.SOFT_BOUNCE:
        soft_count = _recent_soft_bounces(session, row.email_key, now - _days(policy))
        if soft_count >= policy.soft_bounce_limit:
            suppression = (
                # Reasons are a closed list; the detail says it took several soft bounces.
                SuppressionReason.HARD_BOUNCE,
                f"{soft_count} soft bounces within {policy.soft_bounce_days:g} days; "
                f"last: {_describe(feedback)}",
            )
    suppressed_as = None
    # An erased address is suppressed already, by its keyed hash.
    if suppression is not None and not erased:
        reason, detail = suppression
        if insert_new_suppressions(session, [suppression_row(row.email_key, reason, detail, now)]):
            suppressed_as = str(reason)
    return AppliedFeedback(
        Applied.RECORDED,
        job_id,
        row.campaign_id,
        row.email_key,
        suppressed_as=suppressed_as,
        job_bounced=job_bounced,
    )


def _already_recorded(session: Session, job_id: int, dedup_key: str) -> bool:
    details = session.scalars(
        select(JobEvent.detail).where(JobEvent.job_id == job_id, JobEvent.kind.in_(_FEEDBACK_KINDS))
    )
    return any((detail or {}).get("dedup_key") == dedup_key for detail in details)


def _mark_bounced(session: Session, job_id: int, feedback: Feedback) -> bool:
    """A job whose message the relay took, and that came back, is ``bounced`` after all.

    The stored reply is the bounce's, so listings and retries class the job as the hard
    bounce it is rather than as the relay's 250.
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(_BOUNCED_FROM_STATES))
        .values(
            state=JobState.BOUNCED,
            last_code=find_smtp_code(feedback.diagnostic) or int(SMTPStatus.mailbox_does_not_exist),
            last_status=feedback.status,
            last_reply=_describe(feedback)[:2000],
            updated_at=utc_now(),
        )
    )
    return rows_matched(result) == 1


def _recent_soft_bounces(session: Session, email_key: str, since: Any) -> int:
    details = session.scalars(
        select(JobEvent.detail)
        .join(Job, Job.id == JobEvent.job_id)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(
            Recipient.email_key == email_key,
            JobEvent.kind == EventKind.BOUNCED,
            JobEvent.occurred_at >= since,
        )
    )
    soft = bounce_event_class(ReplyClass.SOFT_BOUNCE)
    return sum(1 for detail in details if (detail or {}).get("class") == soft)


def _days(policy: BouncePolicy) -> timedelta:
    return timedelta(days=policy.soft_bounce_days)


def _describe(feedback: Feedback) -> str:
    words = [feedback.source, feedback.status or "", feedback.diagnostic]
    return " ".join(word for word in words if word)[:2000]
