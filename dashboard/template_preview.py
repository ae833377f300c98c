"""A template as one recipient will see it, the variable check against a whole list, and a test
message sent to any address through the configured relay.

Rendering is the campaign's own (``CompiledTemplate`` with ``render_context``); the test message
is built, signed and sent as delivery does, so what arrives is what recipients will get, apart
from the subject's ``[Test]`` mark and a placeholder unsubscribe link.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select

from campaigns.content.dkim_keys import signer_from_settings
from campaigns.content.isolated_render import DEFAULT_CPU_LIMIT_S, render_isolated
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
from campaigns.lifecycle.campaign_service import campaign_template, render_context
from campaigns.lists.fields import normalise_email
from workers.relays.config import load_relay_config
from workers.smtp.pool import SendOutcomeKind, SmtpPool

PREVIEW_UNSUBSCRIBE_URL = "https://example.invalid/unsubscribe-preview"
PREVIEW_CAMPAIGN_NAME = "Preview"
TEST_SUBJECT_MARK = "[Test] "
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


def render_for(
    source: TemplateSource,
    *,
    email: str,
    fields: dict[str, str],
    campaign_name: str = "",
    cpu_limit_s: float = DEFAULT_CPU_LIMIT_S,
) -> RenderedMessage:
    # In a child process: a costly template must not hold up the server's other requests.
    return render_isolated(
        source,
        render_context(
            campaign_name=campaign_name or PREVIEW_CAMPAIGN_NAME,
            email=email,
            fields=fields,
            unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL,
        ),
        cpu_limit_s=cpu_limit_s,
    )


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
    rendered: RenderedMessage,
    *,
    from_address: str,
    to_address: str,
) -> SendTestOutcome:
    """Send one test message through the first configured relay; the outcome, never raises
    for SMTP trouble (a refusal is a result to show, not an error)."""
    to = normalise_email(to_address)
    skeleton = MessageSkeleton(from_address=from_address, campaign_uuid=f"test-{uuid.uuid4()}")
    marked = RenderedMessage(
        subject=TEST_SUBJECT_MARK + rendered.subject, html=rendered.html, text=rendered.text
    )
    message = skeleton.build(
        job_id=0, to_address=to, rendered=marked, unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL
    )
    signer = signer_from_settings(settings)
    if signer is not None:
        message = signer.sign(message)
    relay = load_relay_config(settings).relays[0]
    pool = SmtpPool(
        relay.relay,
        size=1,
        timeout_s=min(settings.smtp_timeout_s, _TEST_SEND_TIMEOUT_S),
        data_timeout_s=min(settings.smtp_data_timeout_s, _TEST_SEND_TIMEOUT_S * 3),
    )
    try:
        outcome = await pool.send(sender=skeleton.sender_address, recipient=to, message=message)
    finally:
        await pool.close()
    return SendTestOutcome(
        to=to,
        accepted=outcome.kind == SendOutcomeKind.ACCEPTED,
        reply=outcome.message,
        relay=relay.relay.display(),
    )
