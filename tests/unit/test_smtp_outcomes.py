"""Classifying refusals by their RFC 3463 enhanced status code; the unknown policy setting."""

from __future__ import annotations

import pytest

from campaigns.bounces.classify import classify_bounce
from campaigns.core.errors import ConfigError
from campaigns.core.models import JobState
from campaigns.core.reply_classes import (
    ReplyClass,
    bounce_event_class,
    classify_rejection,
    job_reply_class,
    rejection_state,
)
from campaigns.core.settings import Settings


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (550, "5.1.1", ReplyClass.HARD_BOUNCE),
        (550, "5.1.2", ReplyClass.HARD_BOUNCE),
        (556, "5.1.10", ReplyClass.HARD_BOUNCE),
        (550, "5.2.1", ReplyClass.HARD_BOUNCE),
        (552, "5.2.2", ReplyClass.SOFT_BOUNCE),
        (552, "5.3.4", ReplyClass.SOFT_BOUNCE),
        (550, "5.7.1", ReplyClass.POLICY),
        (550, "5.7.26", ReplyClass.POLICY),
        (554, "5.6.0", ReplyClass.PERMANENT),
        (554, None, ReplyClass.PERMANENT),
        (550, "4.2.2", ReplyClass.PERMANENT),
        (None, None, ReplyClass.NOT_SENT),
    ],
)
def test_a_refusal_is_classified_by_its_enhanced_status(
    code: int | None, status: str | None, expected: ReplyClass
) -> None:
    assert classify_rejection(code, status) == expected


def test_only_bounces_become_bounced_the_rest_failed() -> None:
    states = {reply_class: rejection_state(reply_class) for reply_class in ReplyClass}
    assert {c for c, s in states.items() if s == JobState.BOUNCED} == {
        ReplyClass.HARD_BOUNCE,
        ReplyClass.SOFT_BOUNCE,
    }


@pytest.mark.parametrize(
    ("state", "code", "status", "expected"),
    [
        (JobState.SENT, 250, "2.0.0", ReplyClass.ACCEPTED),
        (JobState.DEFERRED, 451, "4.7.1", ReplyClass.TRANSIENT),
        (JobState.EXPIRED, None, None, ReplyClass.TRANSIENT),
        (JobState.UNKNOWN, None, None, ReplyClass.UNKNOWN),
        (JobState.BOUNCED, 550, "5.1.1", ReplyClass.HARD_BOUNCE),
        (JobState.FAILED, 550, "5.7.1", ReplyClass.POLICY),
        (JobState.FAILED, None, None, ReplyClass.NOT_SENT),
        (JobState.QUEUED, None, None, None),
        (JobState.SUPPRESSED, None, None, None),
        (JobState.CANCELLED, None, None, None),
    ],
)
def test_a_stored_job_reads_back_as_the_class_delivery_gave_it(
    state: str, code: int | None, status: str | None, expected: ReplyClass | None
) -> None:
    assert job_reply_class(state, code, status) == expected


@pytest.mark.parametrize("status", ["5.1.1", "5.1.10", "5.2.2", "5.7.1", "5.7.26"])
def test_a_refusal_and_a_later_bounce_with_the_same_status_get_the_same_class(status: str) -> None:
    assert classify_rejection(550, status) == classify_bounce(status)


def test_bounce_events_keep_their_short_class_words() -> None:
    assert {
        reply_class: bounce_event_class(reply_class)
        for reply_class in (ReplyClass.HARD_BOUNCE, ReplyClass.SOFT_BOUNCE, ReplyClass.POLICY)
    } == {
        ReplyClass.HARD_BOUNCE: "hard",
        ReplyClass.SOFT_BOUNCE: "soft",
        ReplyClass.POLICY: "policy",
    }
    with pytest.raises(ValueError, match="'permanent' is not a bounce class"):
        bounce_event_class(ReplyClass.PERMANENT)


def test_an_unknown_policy_other_than_hold_or_retry_is_refused_naming_the_variable() -> None:
    assert Settings.from_env({}).unknown_policy == "hold"
    assert Settings.from_env({"EDM_UNKNOWN_POLICY": "retry"}).unknown_policy == "retry"
    with pytest.raises(ConfigError, match=r"EDM_UNKNOWN_POLICY.*'resend'"):
        Settings.from_env({"EDM_UNKNOWN_POLICY": "resend"})
