"""What a relay's verdict means for the recipient, read from its RFC 3463 enhanced status code.

One vocabulary for a refusal during the SMTP dialogue and for a bounce that arrives later, so a
recipient is judged the same either way. Pure functions over (state, code, enhanced status):
delivery uses them to pick a job's state, the failure listing and ``edm campaigns retry`` use
the same ones to explain and to choose, so the three never disagree. Only the reply is stored;
the class is always derived from it. Bounce events store their class in older, shorter words
(:func:`bounce_event_class`).
"""

from __future__ import annotations

import enum

from campaigns.core.models import JobState


class ReplyClass(enum.StrEnum):
    ACCEPTED = "accepted"
    TRANSIENT = "transient"
    """4xx or connection trouble: deferred, retried with backoff, ``expired`` at the end."""
    HARD_BOUNCE = "hard_bounce"
    """The address does not exist or is disabled: bounced, and suppressed for good."""
    SOFT_BOUNCE = "soft_bounce"
    """Mailbox full, message too big: bounced this time, may work later; not suppressed at once.
    A bounce report too unclear to call hard is soft too; several within a few days suppress."""
    POLICY = "policy"
    """5.7.x: refused for the sender's reasons (authentication, DMARC, reputation, relaying)."""
    PERMANENT = "permanent"
    """Any other 5xx, including one without an enhanced status code: the reason is unclear."""
    NOT_SENT = "not_sent"
    """Refused before reaching the relay's verdict on the recipient (a render error, say)."""
    UNKNOWN = "unknown"
    """No reply to the final '.': the relay may have the message."""


HARD_BOUNCE_STATUSES = frozenset({"5.1.1", "5.1.2", "5.1.10", "5.2.1"})
"""Bad mailbox, bad domain, null MX (RFC 7505), mailbox disabled: sending again cannot help.

Kept short on purpose: a wrong hard bounce suppresses a real person's address forever.
"""
SOFT_BOUNCE_STATUSES = frozenset({"5.2.2", "5.3.4"})
"""Mailbox full, message too big: about this message or this moment, not the address."""

_BOUNCE_EVENT_CLASSES = {
    ReplyClass.HARD_BOUNCE: "hard",
    ReplyClass.SOFT_BOUNCE: "soft",
    ReplyClass.POLICY: "policy",
}


def bounce_event_class(reply_class: ReplyClass) -> str:
    """The class as a bounce event stores it ("hard", "soft", "policy") and intake reports it."""
    try:
        return _BOUNCE_EVENT_CLASSES[reply_class]
    except KeyError:
        raise ValueError(f"reply class {str(reply_class)!r} is not a bounce class") from None


def classify_rejection(code: int | None, status: str | None) -> ReplyClass:
    """The class of a 5xx refusal (or a local refusal without a code) from its enhanced status."""
    if code is None:
        return ReplyClass.NOT_SENT
    # An enhanced code whose class contradicts the reply code (550 4.2.2) is not trusted.
    if status is None or not status.startswith("5."):
        return ReplyClass.PERMANENT
    if status in HARD_BOUNCE_STATUSES:
        return ReplyClass.HARD_BOUNCE
    if status in SOFT_BOUNCE_STATUSES:
        return ReplyClass.SOFT_BOUNCE
    if status.startswith("5.7."):
        return ReplyClass.POLICY
    return ReplyClass.PERMANENT


def rejection_state(reply_class: ReplyClass) -> JobState:
    """Bounces are about the recipient's mailbox; other refusals are failures of this send."""
    if reply_class in (ReplyClass.HARD_BOUNCE, ReplyClass.SOFT_BOUNCE):
        return JobState.BOUNCED
    return JobState.FAILED


def job_reply_class(state: str, code: int | None, status: str | None) -> ReplyClass | None:
    """The class of a job's last outcome as stored; None for jobs no relay has answered about."""
    if state == JobState.SENT:
        return ReplyClass.ACCEPTED
    if state in (JobState.DEFERRED, JobState.EXPIRED):
        return ReplyClass.TRANSIENT
    if state == JobState.UNKNOWN:
        return ReplyClass.UNKNOWN
    if state in (JobState.BOUNCED, JobState.FAILED):
        return classify_rejection(code, status)
    return None
