"""A template as one recipient will see it, the variable check against a whole list, and a test
message sent to any address through the configured relays.

Everything goes through the campaign's own ``MessagePipeline``: the test message is rendered,
built, signed, given a VERP return path and sent through the relay set (its limits in Redis,
failover to the next relay) as delivery does, so what arrives is what recipients will get, apart
from the subject's ``[Test]`` mark, a placeholder unsubscribe link and no click tracking (a
template on its own has no campaign to record links in).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

from redis.asyncio import Redis
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
from workers.embedded_redis import known_redis_url
from workers.relays.config import RelaySetConfig, load_relay_config
from workers.relays.relay_set import RelaySet
from workers.smtp.pool import SendOutcomeKind

PREVIEW_BASE_URL = "https://example.invalid"
PREVIEW_UNSUBSCRIBE_URL = f"{PREVIEW_BASE_URL}/unsubscribe-preview"
PREVIEW_CAMPAIGN_NAME = "Preview"
TEST_SUBJECT_MARK = "[Test] "
TEST_JOB_ID = 0
"""No job has id 0: a bounce of a test message reaches the intake and names nothing."""
_TEST_SEND_TIMEOUT_S = 20.0
"""How long a test send waits on Redis, the relays' limits and each relay's connection."""
NO_REDIS_REPLY = (
    "not sent: no Redis is known (set EDM_REDIS_URL or start a worker); a test message waits for "
    "the relays' limits there as every message does"
)
LIMITS_UNREACHABLE_REPLY = "not sent: the relays' limits in Redis could not be reached"
LIMITS_WAIT_REPLY = (
    f"not sent: the relays' limits allow no message within {_TEST_SEND_TIMEOUT_S:.0f} s"
)


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
    through the configured relays as delivery sends: the relays' limits in Redis, and the next
    relay when one cannot be connected to. The outcome; never raises for SMTP trouble (a
    refusal is a result to show, not an error)."""
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
    config = load_relay_config(settings)
    redis_url = known_redis_url(settings.redis_url, settings.data_dir)
    if not redis_url:
        return SendTestOutcome(to=to, accepted=False, reply=NO_REDIS_REPLY, relay="")
    redis = Redis.from_url(
        redis_url, socket_timeout=_TEST_SEND_TIMEOUT_S, socket_connect_timeout=_TEST_SEND_TIMEOUT_S
    )
    relays = RelaySet.from_settings(config, redis, _one_message_settings(settings))
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + _TEST_SEND_TIMEOUT_S
    try:
        outcome = await relays.send(
            sender=sender,
            recipient=to,
            message=message,
            should_stop=lambda: loop.time() > give_up_at,
        )
    finally:
        await relays.close()
        await redis.aclose()
    if outcome is None:
        reply = LIMITS_WAIT_REPLY if loop.time() > give_up_at else LIMITS_UNREACHABLE_REPLY
        return SendTestOutcome(to=to, accepted=False, reply=reply, relay="")
    return SendTestOutcome(
        to=to,
        accepted=outcome.kind == SendOutcomeKind.ACCEPTED,
        reply=outcome.message,
        relay=_relay_shown(config, outcome.relay),
    )


def _one_message_settings(settings: Settings) -> Settings:
    """One connection per relay, and a person waiting: shorter timeouts than a campaign's."""
    return replace(
        settings,
        smtp_connections=1,
        smtp_timeout_s=min(settings.smtp_timeout_s, _TEST_SEND_TIMEOUT_S),
        smtp_data_timeout_s=min(settings.smtp_data_timeout_s, _TEST_SEND_TIMEOUT_S * 3),
    )


def _relay_shown(config: RelaySetConfig, name: str | None) -> str:
    """The relay that answered, as host:port (what the editor configured), else its name."""
    for relay in config.relays:
        if relay.name == name:
            return relay.relay.display()
    return name or ""
