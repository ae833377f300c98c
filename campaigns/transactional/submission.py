"""Accepting one message: check it, render it once, record it durably, then publish it.

The API and ``edm send`` both call ``submit_message``. Nothing is recorded unless every check
passed; once it returns, the message is committed, so a lost publication (Redis restarted
empty) only delays it until the dispatcher's pass publishes it again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.content.templating import TemplateSource
from campaigns.core.errors import ConflictingRequest, InputError, StateError
from campaigns.core.models import (
    Job,
    JobState,
    Recipient,
    RecipientList,
    Suppression,
    TransactionalMessage,
    utc_now,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lists.erased_addresses import erased_key
from campaigns.lists.suppression import suppression_blocks
from campaigns.transactional.content import (
    INLINE_TEMPLATE,
    named_template,
    raw_mime_pipeline,
    transactional_pipeline,
)
from campaigns.transactional.requests import (
    CheckedRequest,
    MessageRequest,
    checked_request,
    request_fingerprint,
)
from campaigns.transactional.streams import stream_for

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
RAW_MIME_TEMPLATE = "(raw MIME)"
"""The name a whole submitted message's row gives in place of a template; never stored."""
CHECK_JOB_ID = 0
"""The job id a message is rendered with before it has one."""

Publish = Callable[[Sequence[int]], None]


@dataclass(frozen=True)
class Accepted:
    message_id: str
    job_id: int
    duplicate: bool
    """The idempotency key was seen within a day: this is the first message, nothing new."""


def submit_message(
    database: Database,
    request: MessageRequest,
    *,
    settings: Settings,
    idempotency_scope: str,
    publish: Publish,
    now: datetime | None = None,
) -> Accepted:
    """Record one message and publish it; InputError (nothing recorded) when it cannot be sent
    as given, StateError when its address is suppressed for a reason that stops this mail."""
    now = now or utc_now()
    checked = checked_request(
        request,
        default_from=settings.tx_from_address,
        max_attachment_bytes=settings.tx_max_attachment_bytes,
    )
    fingerprint = request_fingerprint(checked)
    earlier = _earlier_or_refused(
        database, checked, idempotency_scope, fingerprint, settings.secret, now
    )
    if earlier is not None:
        return earlier
    message = _message_row(checked, settings, idempotency_scope)
    message.request_sha256 = fingerprint
    stream = stream_for(database, request.category)
    _check_renders(message, checked, settings, stream.campaign_uuid)
    accepted = _record(database, message, checked, stream.campaign_id, now)
    if not accepted.duplicate:
        try:
            publish([accepted.job_id])
        except Exception as error:
            # Committed already: the dispatcher publishes it again once it is stale.
            log.warning("transactional message %s not published: %s", accepted.message_id, error)
    return accepted


def _earlier_or_refused(
    database: Database,
    checked: CheckedRequest,
    scope: str,
    fingerprint: str,
    secret: bytes,
    now: datetime,
) -> Accepted | None:
    """In one transaction: the first message of the request's idempotency key, if it was
    used within a day; else StateError when the address is suppressed for this mail."""
    key = checked.request.idempotency_key
    with database.session() as session:
        if key is not None:
            earlier = _earlier_message(session, scope, key, fingerprint, now)
            if earlier is not None:
                return earlier
        reason = _blocking_reason(session, checked.to_key, checked.request.category, secret)
    if reason is not None:
        raise StateError(f"to.email: {checked.to} is suppressed ({reason})")
    return None


def _earlier_message(
    session: Session, scope: str, key: str, fingerprint: str, now: datetime
) -> Accepted | None:
    """The message recorded under ``key`` within a day; ConflictingRequest (nothing recorded)
    when it was recorded for another request, since answering its id would say this one was."""
    row = session.execute(
        select(
            TransactionalMessage.uuid,
            TransactionalMessage.job_id,
            TransactionalMessage.created_at,
            TransactionalMessage.request_sha256,
        ).where(
            TransactionalMessage.idempotency_scope == scope,
            TransactionalMessage.idempotency_key == key,
        )
    ).first()
    if row is None:
        return None
    if row.created_at > now - IDEMPOTENCY_WINDOW:
        if row.request_sha256 not in (None, fingerprint):
            raise ConflictingRequest(
                f"Idempotency-Key: {key[:40]!r} was used for another request within 24 "
                f"hours (message {row.uuid}); use a new key for a new message"
            )
        return Accepted(message_id=row.uuid, job_id=row.job_id, duplicate=True)
    # A day old: the key is free for a new message; the old one keeps its id.
    session.execute(
        update(TransactionalMessage)
        .where(TransactionalMessage.job_id == row.job_id)
        .values(idempotency_key=None)
    )
    return None


def blocking_suppression(
    database: Database, to_key: str, category: str, secret: bytes
) -> str | None:
    """Why mail of ``category`` must not go to ``to_key`` (a hard bounce, a complaint, an
    erasure, whose entry is the address's keyed hash made with ``secret``), if so."""
    with database.session() as session:
        return _blocking_reason(session, to_key, category, secret)


def _blocking_reason(session: Session, to_key: str, category: str, secret: bytes) -> str | None:
    keys = (to_key, erased_key(secret, to_key))
    reason = session.scalar(
        select(Suppression.reason).where(Suppression.email_key.in_(keys)).limit(1)
    )
    return reason if reason is not None and suppression_blocks(reason, category) else None


def _message_row(checked: CheckedRequest, settings: Settings, scope: str) -> TransactionalMessage:
    request = checked.request
    if request.raw_mime is not None:
        source = TemplateSource(name=RAW_MIME_TEMPLATE, subject="", html="", text=None)
    elif request.template is not None:
        source = named_template(request.template, settings.resolved_templates_dir)
    else:
        source = TemplateSource(
            name=INLINE_TEMPLATE,
            subject=request.subject or "",
            html=request.html or "",
            text=request.text,
        )
    return TransactionalMessage(
        uuid=str(uuid.uuid4()),
        category=request.category,
        idempotency_scope=scope,
        idempotency_key=request.idempotency_key,
        from_address=checked.from_address,
        reply_to=request.reply_to,
        to_name=request.to_name,
        template_name=request.template,
        subject_template=source.subject,
        html_template=source.html,
        text_template=source.text,
        headers=checked.headers,
        tags=list(request.tags),
        track=request.track,
        raw_mime=request.raw_mime if request.mime_id is None else None,
        mime_id=request.mime_id,
        attachments=[
            {
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "content": given.content_base64,
            }
            for attachment, given in zip(checked.attachments, request.attachments, strict=True)
        ],
    )


def _check_renders(
    message: TransactionalMessage, checked: CheckedRequest, settings: Settings, stream_uuid: str
) -> None:
    """Render and build it as its worker will: a missing merge field, a bad address or header
    is the caller's error now, not a failed job later."""
    raw = checked.request.raw_mime
    if raw is not None:
        raw_mime_pipeline(message, raw, stream_uuid=stream_uuid, settings=settings).build(
            job_id=CHECK_JOB_ID
        )
        return
    pipeline = transactional_pipeline(
        message,
        stream_uuid=stream_uuid,
        settings=settings,
        render_cpu_limit_s=settings.template_render_cpu_s,
    )
    unsubscribe_url = pipeline.unsubscribe_url(CHECK_JOB_ID)
    rendered = pipeline.render(
        email=checked.to, fields=checked.request.data, unsubscribe_url=unsubscribe_url
    )
    pipeline.build(
        job_id=CHECK_JOB_ID, email=checked.to, rendered=rendered, unsubscribe_url=unsubscribe_url
    )


def _record(
    database: Database,
    message: TransactionalMessage,
    checked: CheckedRequest,
    stream_campaign_id: int,
    now: datetime,
) -> Accepted:
    """One transaction: the message's list, recipient, job and content. A second request with
    the same key that got this far loses on the unique key and gets the first one's id."""
    try:
        with database.session() as session:
            recipient_list = RecipientList(name=f"tx:{message.uuid}", field_names=[])
            session.add(recipient_list)
            session.flush()
            recipient = Recipient(
                list_id=recipient_list.id,
                email=checked.to,
                email_key=checked.to_key,
                fields=dict(checked.request.data),
            )
            session.add(recipient)
            session.flush()
            # Marked as dispatched: the caller publishes it at once; the dispatcher only
            # publishes it again if that was lost.
            job = Job(
                campaign_id=stream_campaign_id,
                recipient_id=recipient.id,
                state=JobState.QUEUED,
                attempts=0,
                dispatched_at=now,
                updated_at=now,
            )
            session.add(job)
            session.flush()
            message.job_id = job.id
            message.list_id = recipient_list.id
            message.created_at = now
            session.add(message)
            session.flush()
            return Accepted(message_id=message.uuid, job_id=job.id, duplicate=False)
    except IntegrityError:
        key = message.idempotency_key
        if key is None:
            raise
        fingerprint = message.request_sha256 or ""
        with database.session() as session:
            earlier = _earlier_message(session, message.idempotency_scope, key, fingerprint, now)
        if earlier is None:
            raise InputError("Idempotency-Key: in use by a message being recorded; retry") from None
        return earlier
