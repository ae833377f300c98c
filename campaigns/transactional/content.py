"""How a transactional message becomes bytes: the campaigns' pipeline, built per message.

Checked with the caller's data before the message is recorded (in a child process with a CPU
limit, as the dashboard's previews are), and built again by the worker that sends it, with the
job's id in its Message-ID, return path and links.
"""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import select

from campaigns.bounces.verp import message_id_tagger
from campaigns.content.attachments import Attachment
from campaigns.content.dkim import DkimSigner
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import (
    CompiledTemplate,
    TemplateSource,
    checked_name,
    load_template,
)
from campaigns.core.errors import EdmError, InputError
from campaigns.core.models import Campaign, Job, SubmittedMime, TransactionalMessage
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lists.suppression import TRANSACTIONAL_CATEGORY
from campaigns.tracking.links import LinkTracker
from campaigns.tracking.message_pipeline import MessagePipeline, OneToOneParts
from campaigns.transactional.raw_mime import RawMimePipeline

INLINE_TEMPLATE = "inline"


def named_template(name: str, templates_dir: Path) -> TemplateSource:
    """A template folder under ``templates_dir`` by name, never a path a caller chose."""
    try:
        folder = templates_dir / checked_name(name)
        if not folder.is_dir():
            raise InputError(f"no template named {name!r}")
        return load_template(name, templates_dir)
    except EdmError as error:
        raise InputError(f"template: {error}") from None


def transactional_pipeline(
    message: TransactionalMessage,
    *,
    stream_uuid: str,
    settings: Settings,
    signer: DkimSigner | None = None,
    tracker: LinkTracker | None = None,
    render_cpu_limit_s: float | None = None,
) -> MessagePipeline:
    source = TemplateSource(
        name=message.template_name or INLINE_TEMPLATE,
        subject=message.subject_template,
        html=message.html_template,
        text=message.text_template,
    )
    return MessagePipeline(
        campaign_name=f"Transactional: {message.category}",
        template=CompiledTemplate(source),
        skeleton=MessageSkeleton(
            from_address=message.from_address,
            campaign_uuid=stream_uuid,
            message_id_tag=message_id_tagger(settings.secret),
        ),
        base_url=settings.base_url,
        secret=settings.secret,
        tracker=tracker,
        signer=signer,
        render_cpu_limit_s=render_cpu_limit_s,
        one_to_one=OneToOneParts(
            to_name=message.to_name,
            reply_to=message.reply_to,
            extra_headers=dict(message.headers or {}),
            attachments=stored_attachments(message),
            list_unsubscribe=message.category != TRANSACTIONAL_CATEGORY,
        ),
    )


def raw_mime_pipeline(
    message: TransactionalMessage,
    raw: bytes,
    *,
    stream_uuid: str,
    settings: Settings,
    signer: DkimSigner | None = None,
) -> RawMimePipeline:
    skeleton = MessageSkeleton(
        from_address=message.from_address,
        campaign_uuid=stream_uuid,
        message_id_tag=message_id_tagger(settings.secret),
    )
    return RawMimePipeline(raw=raw, skeleton=skeleton, signer=signer)


def stored_attachments(message: TransactionalMessage) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(
            filename=stored["filename"],
            content_type=stored["content_type"],
            content=base64.b64decode(stored["content"]),
        )
        for stored in message.attachments or ()
    )


def delivery_pipeline(
    database: Database, job_id: int, settings: Settings, signer: DkimSigner | None
) -> MessagePipeline | RawMimePipeline:
    """The pipeline of the transactional message job ``job_id`` carries, for its worker."""
    with database.session() as session:
        found = session.execute(
            select(TransactionalMessage, Campaign.id, Campaign.uuid)
            .join(Job, Job.id == TransactionalMessage.job_id)
            .join(Campaign, Campaign.id == Job.campaign_id)
            .where(TransactionalMessage.job_id == job_id)
        ).first()
        if found is None:
            raise InputError(f"job {job_id}: no transactional message stored for it")
        message, stream_id, stream_uuid = found
        raw = message.raw_mime
        if message.mime_id is not None:
            raw = session.scalar(
                select(SubmittedMime.raw).where(SubmittedMime.id == message.mime_id)
            )
    if raw is not None:
        return raw_mime_pipeline(
            message, raw, stream_uuid=stream_uuid, settings=settings, signer=signer
        )
    tracker = None
    if message.track:
        tracker = LinkTracker(
            database=database,
            campaign_id=stream_id,
            base_url=settings.base_url,
            secret=settings.secret,
        )
    return transactional_pipeline(
        message, stream_uuid=stream_uuid, settings=settings, signer=signer, tracker=tracker
    )
