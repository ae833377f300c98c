"""A template as one recipient will see it, the variable check against a whole list, and a test
message sent to any address through the configured relay.

Everything goes through the campaign's own ``MessagePipeline``: the test message is rendered,
built, signed and given a VERP return path as delivery does, so what arrives is what recipients
will get, apart from the subject's ``[Test]`` mark, a placeholder unsubscribe link and no click
tracking (a template on its own has no campaign to record links in).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select

from campaigns.bounces.verp import return_path_for
from campaigns.content.dkim import DkimSigner
from campaigns.content.dkim_keys import signer_from_settings
from campaigns.content.isolated_render import DEFAULT_CPU_LIMIT_S
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import (
    CompiledTemplate,
    RenderedMessage,
    TemplateSource,
    missing_fields,
)
from campaigns.core.errors import NotFound
from campaigns.core.models import Campaign, Recipient, RecipientList
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import campaign_template
from campaigns.lists.fields import normalise_email
from campaigns.tracking.message_pipeline import MessagePipeline
from workers.relays.config import load_relay_config
from workers.smtp.pool import SendOutcomeKind, SmtpPool

PREVIEW_BASE_URL = "https://example.invalid"
PREVIEW_UNSUBSCRIBE_URL = f"{PREVIEW_BASE_URL}/unsubscribe-preview"
PREVIEW_CAMPAIGN_NAME = "Preview"
TEST_SUBJECT_MARK = "[Test] "
TEST_JOB_ID = 0
"""No job has id 0: a bounce of a test message reaches the intake and names nothing."""
_TEST_SEND_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ListCheck:
    list_id: int
    recipients: int
    missing: dict[str, int]
    """Variables the template uses that some recipients lack, with how many lack each."""

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class SendTestOutcome:
    to: str
    accepted: bool
    reply: str
    relay: str


def preview_pipeline(
    source: TemplateSource,
    *,
    campaign_name: str = "",
    from_address: str = "preview@example.invalid",
    subject_prefix: str = "",
    signer: DkimSigner | None = None,
    render_cpu_limit_s: float | None = DEFAULT_CPU_LIMIT_S,
) -> MessagePipeline:
    """The steps of a campaign's pipeline for a preview or a test send: no tracking, and the
    placeholder unsubscribe link (no job to unsubscribe from)."""
    return MessagePipeline(
        campaign_name=campaign_name or PREVIEW_CAMPAIGN_NAME,
        template=CompiledTemplate(source),
        skeleton=MessageSkeleton(from_address=from_address, campaign_uuid=f"test-{uuid.uuid4()}"),
        base_url=PREVIEW_BASE_URL,
        secret=b"preview",
        signer=signer,
        subject_prefix=subject_prefix,
        render_cpu_limit_s=render_cpu_limit_s,
    )


def render_for(
    source: TemplateSource,
    *,
    email: str,
    fields: dict[str, str],
    campaign_name: str = "",
    cpu_limit_s: float = DEFAULT_CPU_LIMIT_S,
) -> RenderedMessage:
    pipeline = preview_pipeline(source, campaign_name=campaign_name, render_cpu_limit_s=cpu_limit_s)
    return pipeline.render(email=email, fields=fields, unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL)


@dataclass(frozen=True)
class CampaignPreview:
    email: str
    recipient_id: int | None
    rendered: RenderedMessage


def campaign_preview(
    database: Database,
    campaign_id: int,
    *,
    recipient_id: int | None = None,
    cpu_limit_s: float = DEFAULT_CPU_LIMIT_S,
) -> CampaignPreview:
    """The campaign's own copy of its template, for one recipient of its list (the first by
    default), as that recipient will get it."""
    with database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} not found")
        source = campaign_template(campaign)
        query = select(Recipient).where(Recipient.list_id == campaign.list_id)
        if recipient_id is not None:
            query = query.where(Recipient.id == recipient_id)
        recipient = session.scalar(query.order_by(Recipient.id).limit(1))
        if recipient is None:
            if recipient_id is not None:
                raise NotFound(f"recipient {recipient_id} is not in campaign {campaign_id}'s list")
            raise NotFound(f"campaign {campaign_id}'s list has no recipients to preview with")
        rendered = render_for(
            source,
            email=recipient.email,
            fields=dict(recipient.fields),
            campaign_name=campaign.name,
            cpu_limit_s=cpu_limit_s,
        )
        return CampaignPreview(recipient.email, recipient.id, rendered)


def check_against_list(database: Database, source: TemplateSource, list_id: int) -> ListCheck:
    """What ``edm campaigns schedule`` checks: every variable against every recipient."""
    compiled = CompiledTemplate(source)
    with database.session() as session:
        if session.get(RecipientList, list_id) is None:
            raise NotFound(f"list {list_id} not found")
        total = session.scalar(select(func.count()).where(Recipient.list_id == list_id)) or 0

        def fields_stream() -> Iterator[dict[str, str]]:
            yield from session.execute(
                select(Recipient.fields)
                .where(Recipient.list_id == list_id)
                .execution_options(yield_per=2000)
            ).scalars()

        missing = missing_fields(compiled, fields_stream())
    return ListCheck(list_id=list_id, recipients=total, missing=missing)


async def send_test(
    settings: Settings,
    source: TemplateSource,
    *,
    email: str,
    fields: dict[str, str],
    from_address: str,
    to_address: str,
) -> SendTestOutcome:
    """Send one test message, as ``email`` with ``fields`` would get it, to ``to_address``
    through the first configured relay; the outcome, never raises for SMTP trouble (a refusal
    is a result to show, not an error)."""
    to = normalise_email(to_address)
    pipeline = preview_pipeline(
        source,
        from_address=from_address,
        subject_prefix=TEST_SUBJECT_MARK,
        signer=signer_from_settings(settings),
        render_cpu_limit_s=settings.template_render_cpu_s,
    )
    # Off the event loop: the render waits on its child process.
    rendered = await asyncio.to_thread(
        pipeline.render, email=email, fields=fields, unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL
    )
    message = pipeline.build(
        job_id=TEST_JOB_ID, email=to, rendered=rendered, unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL
    )
    bounce_domain = settings.bounce_domain or pipeline.skeleton.sender_domain
    sender = return_path_for(settings.secret, TEST_JOB_ID, bounce_domain)
    relay = load_relay_config(settings).relays[0]
    pool = SmtpPool(
        relay.relay,
        size=1,
        timeout_s=min(settings.smtp_timeout_s, _TEST_SEND_TIMEOUT_S),
        data_timeout_s=min(settings.smtp_data_timeout_s, _TEST_SEND_TIMEOUT_S * 3),
    )
    try:
        outcome = await pool.send(sender=sender, recipient=to, message=message)
    finally:
        await pool.close()
    return SendTestOutcome(
        to=to,
        accepted=outcome.kind == SendOutcomeKind.ACCEPTED,
        reply=outcome.message,
        relay=relay.relay.display(),
    )
