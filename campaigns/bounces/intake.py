"""The one door every bounce and complaint goes through, whichever way it arrived.

``receive_mail`` takes a message as it came to the bounce address (inbound SMTP, a polled
mailbox); ``receive_feedback`` takes an event a provider's webhook already parsed. Malformed,
forged, automatic and unrelated messages are logged and answered with an ignored outcome, never
an exception; only a database failure raises, so the caller can refuse the message and have it
sent again rather than lose it.

Anyone can send mail to the bounce address. A bounce counts only for the job its signed return
path or signed Message-ID names; a complaint (which suppresses at once) only when it names our
message by its signed Message-ID, or when a configured reporter domain signed it (DKIM).
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.bounces.dsn import RecipientStatus
from campaigns.bounces.isolated_reading import MailReader, read_mail_isolated
from campaigns.bounces.policy import Applied, BouncePolicy, Feedback, apply_feedback
from campaigns.bounces.reading import MailKind, MailReading, read_mail
from campaigns.bounces.reading_limits import MailTooCostly
from campaigns.bounces.reporter_auth import is_from_reporter
from campaigns.bounces.verp import (
    MessageIdMatch,
    ReturnPathMatch,
    find_message_id,
    find_return_path,
)
from campaigns.core.models import Campaign, EventKind, Job, JobState, Recipient
from campaigns.core.reply_classes import bounce_event_class
from campaigns.core.settings import Settings
from campaigns.core.storage import Database

log = logging.getLogger(__name__)


class IntakeOutcome(enum.StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    """The same report was recorded before: nothing changed."""
    AUTO_REPLY = "auto_reply"
    NOT_FINAL = "not_final"
    """A DSN that reports a delay or a delivery, not a failure."""
    NOT_A_COMPLAINT = "not_a_complaint"
    """An ARF report of another type (not-spam, auth-failure)."""
    FORGED = "forged"
    """The return path's token or the Message-ID's tag was not signed by us."""
    NO_JOB = "no_job"
    """No job of ours could be matched to the report."""
    UNAUTHENTICATED = "unauthenticated"
    """A complaint that names no message of ours by its signed Message-ID and that no
    configured reporter domain signed."""
    UNRECOGNISED = "unrecognised"
    MALFORMED = "malformed"
    TOO_COSTLY = "too_costly"
    """Past a bound of the parse (size, MIME parts, nesting, CPU time): refused unread."""


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    job_id: int | None = None
    kind: str | None = None
    """``bounced`` or ``complained`` when recorded."""
    bounce_class: str | None = None
    suppressed_as: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class _Job:
    id: int
    email_key: str


class BounceIntake:
    def __init__(
        self,
        database: Database,
        *,
        secret: bytes,
        policy: BouncePolicy,
        reporter_domains: Iterable[str] = (),
        reader: MailReader | None = None,
    ) -> None:
        """``reader`` reads a message (default: :func:`read_mail` in this process, checking
        complaints' DKIM signatures when there are ``reporter_domains``)."""
        self._database = database
        self._secret = secret
        self._policy = policy
        self._reporter_domains = tuple(domain for domain in reporter_domains if domain.strip())
        self._read = reader or functools.partial(
            read_mail, check_signatures=bool(self._reporter_domains)
        )

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> BounceIntake:
        """The intake of ``edm bounces serve`` and ``poll``: messages read in a limited child."""
        reporter_domains = settings.complaint_reporter_domain_list
        read = functools.partial(read_mail, check_signatures=bool(reporter_domains))
        return cls(
            database,
            secret=settings.secret,
            policy=BouncePolicy(
                soft_bounce_limit=settings.soft_bounce_limit,
                soft_bounce_days=settings.soft_bounce_days,
            ),
            reporter_domains=reporter_domains,
            reader=functools.partial(read_mail_isolated, read=read),
        )

    def receive_mail(self, raw: bytes, envelope_recipients: Sequence[str] = ()) -> IntakeResult:
        """Record what a message that reached the bounce address reports, if anything."""
        reading = self._reading(raw)
        if isinstance(reading, IntakeResult):
            return reading
        return self._record(reading, envelope_recipients)

    def receive_mail_for_each(self, raw: bytes, recipients: Sequence[str]) -> list[IntakeResult]:
        """One message that came by SMTP to several return paths, each naming its own job,
        read once."""
        reading = self._reading(raw)
        if isinstance(reading, IntakeResult):
            return [reading]
        return [self._record(reading, [recipient]) for recipient in recipients]

    def _reading(self, raw: bytes) -> MailReading | IntakeResult:
        try:
            return self._read(raw)
        except MailTooCostly as error:
            return _ignored(IntakeOutcome.TOO_COSTLY, str(error))
        except Exception as error:
            return _ignored(IntakeOutcome.MALFORMED, f"cannot be parsed: {error!r}")

    def _record(self, reading: MailReading, envelope_recipients: Sequence[str]) -> IntakeResult:
        if reading.kind in (MailKind.AUTO_REPLY, MailKind.UNRECOGNISED):
            outcome = (
                IntakeOutcome.AUTO_REPLY
                if reading.kind == MailKind.AUTO_REPLY
                else IntakeOutcome.UNRECOGNISED
            )
            return _ignored(outcome, reading.note)
        addresses = [*envelope_recipients, *reading.delivered_to, *reading.original_return_paths]
        return_path = find_return_path(self._secret, (address.lower() for address in addresses))
        if return_path is not None and return_path.job_id is None:
            return _ignored(IntakeOutcome.FORGED, f"return path {return_path.address} is forged")
        if reading.kind == MailKind.COMPLAINT and not (
            reading.complaint and reading.complaint.is_complaint
        ):
            feedback_type = reading.complaint.feedback_type if reading.complaint else "?"
            return _ignored(IntakeOutcome.NOT_A_COMPLAINT, f"feedback type {feedback_type}")
        failures = [status for status in reading.recipients if status.is_failure]
        if reading.kind != MailKind.COMPLAINT and not failures:
            actions = ", ".join(sorted({status.action or "?" for status in reading.recipients}))
            return _ignored(IntakeOutcome.NOT_FINAL, f"a DSN reporting {actions or 'nothing'}")
        if reading.kind == MailKind.COMPLAINT:
            return self._record_complaint(reading, return_path)
        with self._database.session() as session:
            if return_path is not None:
                job = _job_by_id(session, return_path.job_id)  # type: ignore[arg-type]
            else:
                job = _job_by_message_id(session, self._secret, reading, failures)
            if job is None:
                return _ignored(IntakeOutcome.NO_JOB, "no job of ours matches it")
            feedback = _feedback(reading, job, failures)
            applied = apply_feedback(session, job.id, feedback, self._policy)
        return _result(applied.applied, applied.job_id, feedback, applied.suppressed_as)

    def _record_complaint(
        self, reading: MailReading, return_path: ReturnPathMatch | None
    ) -> IntakeResult:
        """A complaint suppresses at once, so a return path (which the complainer's copy shows
        and a forger may reuse for any report) is not enough: the report must return our signed
        Message-ID, or come signed from a configured reporter domain."""
        named = _signed_message_id(self._secret, reading.original_message_ids)
        from_reporter = is_from_reporter(reading.signing_domains, self._reporter_domains)
        if named is None and not from_reporter:
            return _ignored(
                IntakeOutcome.UNAUTHENTICATED,
                "complaint names no message of ours by its signed Message-ID and no reporter"
                f" domain signed it (signed by {', '.join(reading.signing_domains) or 'none'})",
            )
        if named is not None and return_path is not None and named.job_id != return_path.job_id:
            return _ignored(IntakeOutcome.FORGED, "return path and Message-ID name other jobs")
        complaint = reading.complaint
        with self._database.session() as session:
            job = None
            if named is not None and named.job_id is not None:
                job = _job_of_campaign(session, named.campaign_uuid, named.job_id)
            elif return_path is not None:
                job = _job_by_id(session, return_path.job_id)  # type: ignore[arg-type]
            elif complaint is not None and complaint.original_recipient:
                job = _latest_job_sent_to(session, complaint.original_recipient)
            if job is None:
                return _ignored(IntakeOutcome.NO_JOB, "no job of ours matches it")
            feedback = _feedback(reading, job, [])
            applied = apply_feedback(session, job.id, feedback, self._policy)
        return _result(applied.applied, applied.job_id, feedback, applied.suppressed_as)

    def receive_feedback(
        self,
        feedback: Feedback,
        *,
        recipient: str,
        message_id: str | None = None,
        authenticated: bool = True,
    ) -> IntakeResult:
        """Record an event from a provider webhook.

        The job is the one our ``message_id`` names when it was sent to ``recipient``; failing
        that, for an ``authenticated`` call only, the latest message sent to ``recipient``
        (anyone could name an address, few could name a message sent to it). A Message-ID of
        our shape whose tag does not verify makes the event count for nothing.
        """
        email_key = recipient.strip().lower()
        named = find_message_id(self._secret, message_id or "")
        if named is not None and named.job_id is None:
            return _ignored(IntakeOutcome.FORGED, f"Message-ID {message_id!r} has no valid tag")
        with self._database.session() as session:
            job = None
            if named is not None and named.job_id is not None:
                job = _job_of_campaign(session, named.campaign_uuid, named.job_id)
                if job is not None and job.email_key != email_key:
                    job = None
            if job is None and authenticated:
                job = _latest_job_sent_to(session, email_key)
            if job is None:
                return _ignored(IntakeOutcome.NO_JOB, f"no message of ours was sent to {recipient}")
            applied = apply_feedback(session, job.id, feedback, self._policy)
        return _result(applied.applied, applied.job_id, feedback, applied.suppressed_as)


def _feedback(reading: MailReading, job: _Job, failures: list[RecipientStatus]) -> Feedback:
    if reading.kind == MailKind.COMPLAINT:
        complaint = reading.complaint
        return Feedback(
            kind=EventKind.COMPLAINED,
            dedup_key=reading.fingerprint,
            source="arf",
            reported_recipient=complaint.original_recipient if complaint else None,
            extra={
                "feedback_type": complaint.feedback_type if complaint else "",
                "user_agent": complaint.user_agent if complaint else "",
                "arrival_date": reading.arrival_date,
            },
        )
    # One message, one recipient: the block about the job's address, else the first failure.
    status = next(
        (
            failure
            for failure in failures
            if job.email_key in (failure.recipient, failure.original_recipient)
        ),
        failures[0],
    )
    return Feedback(
        kind=EventKind.BOUNCED,
        dedup_key=reading.fingerprint,
        source="dsn" if reading.kind == MailKind.DSN else "nonstandard",
        bounce_class=status.bounce_class,
        status=status.status,
        diagnostic=status.diagnostic,
        reported_recipient=status.recipient,
        extra={"arrival_date": reading.arrival_date, **reading.extra},
    )


def _signed_message_id(secret: bytes, message_ids: Iterable[str]) -> MessageIdMatch | None:
    for message_id in message_ids:
        named = find_message_id(secret, message_id)
        if named is not None and named.job_id is not None:
            return named
    return None


def _job_by_id(session: Session, job_id: int) -> _Job | None:
    row = session.execute(
        select(Job.id, Recipient.email_key)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(Job.id == job_id)
    ).first()
    return _Job(row.id, row.email_key) if row else None


def _job_of_campaign(session: Session, campaign_uuid: str, job_id: int) -> _Job | None:
    row = session.execute(
        select(Job.id, Recipient.email_key)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .join(Campaign, Campaign.id == Job.campaign_id)
        .where(Job.id == job_id, Campaign.uuid == campaign_uuid)
    ).first()
    return _Job(row.id, row.email_key) if row else None


def _job_by_message_id(
    session: Session, secret: bytes, reading: MailReading, failures: list[RecipientStatus]
) -> _Job | None:
    """The fallback when no return path survived: our Message-ID in the returned headers.

    Only a Message-ID whose tag verifies counts, and only when the report also names the
    job's recipient.
    """
    reported = {
        address
        for failure in failures
        for address in (failure.recipient, failure.original_recipient)
        if address
    }
    reported.update(reading.original_recipients)
    for message_id in reading.original_message_ids:
        named = find_message_id(secret, message_id)
        if named is None or named.job_id is None:
            continue
        job = _job_of_campaign(session, named.campaign_uuid, named.job_id)
        if job is not None and job.email_key in reported:
            return job
    return None


def _latest_job_sent_to(session: Session, email_key: str) -> _Job | None:
    row = session.execute(
        select(Job.id, Recipient.email_key)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(
            Recipient.email_key == email_key,
            Job.state.in_((JobState.SENT, JobState.BOUNCED, JobState.UNKNOWN)),
            Job.sent_at.is_not(None),
        )
        .order_by(Job.sent_at.desc(), Job.id.desc())
        .limit(1)
    ).first()
    return _Job(row.id, row.email_key) if row else None


def _result(
    applied: Applied, job_id: int, feedback: Feedback, suppressed_as: str | None
) -> IntakeResult:
    outcome = IntakeOutcome.RECORDED if applied == Applied.RECORDED else IntakeOutcome.DUPLICATE
    bounce_class = bounce_event_class(feedback.bounce_class) if feedback.bounce_class else None
    log.info(
        "%s %s for job %s (%s)%s",
        outcome,
        feedback.kind,
        job_id,
        bounce_class or feedback.source,
        f", suppressed as {suppressed_as}" if suppressed_as else "",
    )
    return IntakeResult(
        outcome=outcome,
        job_id=job_id,
        kind=str(feedback.kind),
        bounce_class=bounce_class,
        suppressed_as=suppressed_as,
    )


def _ignored(outcome: IntakeOutcome, reason: str) -> IntakeResult:
    log.info("ignored (%s): %s", outcome, reason)
    return IntakeResult(outcome=outcome, reason=reason)
