"""Delivering one batch of jobs: claim, render, send over pooled connections, record.

This is the function the Celery task, the tests and the benchmark all drive. It runs on one
event loop per worker process; parallelism comes from several SMTP connections in the pool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select

from campaigns.bounces.verp import message_id_tagger, return_path_for
from campaigns.content.dkim import DkimSigner
from campaigns.content.dkim_keys import signer_from_settings
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import CompiledTemplate
from campaigns.core.errors import EdmError
from campaigns.core.job_predicates import campaign_is_stream
from campaigns.core.models import Campaign, CampaignState, JobState, utc_now
from campaigns.core.reply_classes import (
    ReplyClass,
    classify_rejection,
    rejection_state,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.job_store import (
    ClaimedJob,
    JobOutcome,
    campaign_states,
    claim_jobs,
    release_jobs,
    renew_leases,
)
from campaigns.jobs.retry_policy import RetryPolicy
from campaigns.lifecycle.campaign_service import campaign_template
from campaigns.lists.suppression import SuppressionReason
from campaigns.tracking.links import LinkTracker
from campaigns.tracking.message_pipeline import MessagePipeline
from campaigns.transactional.content import delivery_pipeline
from campaigns.transactional.raw_mime import RawMimePipeline
from workers.delivery.job_writer import JobWriter, TransmitNotRecorded
from workers.delivery.send_rate_counters import SendRateCounters
from workers.relays.config import load_relay_config
from workers.relays.relay_set import RelaySet, recipient_domain
from workers.smtp.pool import BeforePayload, SendOutcome, SendOutcomeKind

log = logging.getLogger(__name__)

CAMPAIGN_STATE_POLL_S = 0.5
"""How often a sending batch looks for pause and cancel: the bound on how late a pause acts."""
SEND_WINDOW_S = 20 * 60.0
"""A batch starts no send after this long and hands the rest back: waiting for rate limits must
not run into the task's time limit (celery_app.BATCH_TIME_LIMIT_S), which kills the process."""


@dataclass(frozen=True)
class PreparedCampaign:
    """What a worker needs to send a campaign, built once per process and campaign."""

    id: int
    pipeline: MessagePipeline | None
    """None for a transactional stream: each of its messages brings its own."""
    bounce_domain: str
    relay_names: tuple[str, ...] | None = None
    """The relays the campaign may send through; None means every relay."""

    @property
    def is_transactional(self) -> bool:
        return self.pipeline is None

    @classmethod
    def load(
        cls,
        database: Database,
        campaign_id: int,
        settings: Settings,
        signer: DkimSigner | None = None,
    ) -> PreparedCampaign:
        with database.session() as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                raise EdmError(f"campaign {campaign_id} not found")
            if session.scalar(select(campaign_is_stream()).where(Campaign.id == campaign_id)):
                return cls(id=campaign.id, pipeline=None, bounce_domain=settings.bounce_domain)
            skeleton = MessageSkeleton(
                from_address=campaign.from_address,
                campaign_uuid=campaign.uuid,
                message_id_tag=message_id_tagger(settings.secret),
            )
            tracker = (
                LinkTracker(
                    database=database,
                    campaign_id=campaign.id,
                    base_url=settings.base_url,
                    secret=settings.secret,
                )
                if campaign.tracking
                else None
            )
            pipeline = MessagePipeline(
                campaign_name=campaign.name,
                template=CompiledTemplate(campaign_template(campaign)),
                skeleton=skeleton,
                base_url=settings.base_url,
                secret=settings.secret,
                tracker=tracker,
                signer=signer,
            )
            return cls(
                id=campaign.id,
                pipeline=pipeline,
                bounce_domain=settings.bounce_domain or skeleton.sender_domain,
                relay_names=tuple(campaign.relays) if campaign.relays else None,
            )


@dataclass
class DeliveryContext:
    settings: Settings
    database: Database
    relays: RelaySet
    """The relays and their global limits: every message goes through them."""
    worker_id: str
    campaigns: dict[int, PreparedCampaign] = field(default_factory=dict)
    signer: DkimSigner | None = None
    """Signs every message when DKIM is configured; built once per process."""
    send_rate_counters: SendRateCounters | None = None
    """Counts what the relays took, per relay and domain, for the dashboard; None: not counted."""

    @classmethod
    def from_settings(
        cls, settings: Settings, *, database: Database, redis: Redis, worker_id: str
    ) -> DeliveryContext:
        """What a worker process sends with: the relays, limits, counters and DKIM signer that
        ``settings`` describe, sharing ``redis`` (ConfigError, one line, for a bad config)."""
        return cls(
            settings=settings,
            database=database,
            relays=RelaySet.from_settings(load_relay_config(settings), redis, settings),
            worker_id=worker_id,
            signer=signer_from_settings(settings),
            send_rate_counters=SendRateCounters(redis, settings.redis_namespace),
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            first_delay_s=self.settings.retry_first_delay_s,
            max_delay_s=self.settings.retry_max_delay_s,
            lifetime_s=self.settings.retry_lifetime_s,
        )

    def prepared(self, campaign_id: int) -> PreparedCampaign:
        # A scheduled campaign's template and sender never change, so the cache needs no expiry.
        if campaign_id not in self.campaigns:
            self.campaigns[campaign_id] = PreparedCampaign.load(
                self.database, campaign_id, self.settings, self.signer
            )
        return self.campaigns[campaign_id]


@dataclass(frozen=True)
class BatchSummary:
    claimed: int
    outcomes: dict[str, int]
    released: int
    elapsed_s: float


async def deliver_batch(
    context: DeliveryContext, job_ids: Sequence[int], *, send_window_s: float = SEND_WINDOW_S
) -> BatchSummary:
    """Claims, sends and records ``job_ids``; what is not sent within ``send_window_s`` (see
    ``SEND_WINDOW_S``) is handed back."""
    started = time.monotonic()
    settings = context.settings
    claimed = claim_jobs(
        context.database,
        job_ids,
        worker_id=context.worker_id,
        lease_s=settings.lease_s,
        blocked_domains=settings.blocked_domain_set(),
    )
    if not claimed:
        return BatchSummary(0, {}, 0, time.monotonic() - started)
    progress = _BatchProgress(
        waiting=deque(claimed),
        unfinished={job.job_id for job in claimed},
        send_until=started + send_window_s,
    )
    writer = JobWriter(context.database, context.worker_id, context.send_rate_counters)
    campaign_ids = {job.campaign_id for job in claimed}
    watcher = asyncio.create_task(_watch_campaigns(context, progress, campaign_ids))
    try:
        senders = [
            _send_waiting(context, progress, writer)
            for _ in range(min(settings.smtp_connections, len(claimed)))
        ]
        await asyncio.gather(*senders)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await writer.close()
        released = 0
        if progress.unfinished:
            released = await asyncio.to_thread(
                release_jobs,
                context.database,
                list(progress.unfinished),
                worker_id=context.worker_id,
            )
    summary = BatchSummary(len(claimed), dict(progress.tally), released, time.monotonic() - started)
    log.info(
        "batch: claimed %d, outcomes %s, released %d, %.2f s",
        summary.claimed,
        summary.outcomes,
        summary.released,
        summary.elapsed_s,
    )
    if progress.failures:
        raise progress.failures[0]
    return summary


@dataclass
class _BatchProgress:
    """What the senders and the campaign watcher of one batch share on its event loop."""

    waiting: deque[ClaimedJob]
    unfinished: set[int]
    """Claimed jobs without an outcome yet: their leases are renewed, and they are handed back."""
    send_until: float
    """On the ``time.monotonic()`` clock: no send starts after it."""
    stopped_campaigns: set[int] = field(default_factory=set)
    failures: list[Exception] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)

    def should_stop(self, campaign_id: int) -> bool:
        return campaign_id in self.stopped_campaigns or time.monotonic() > self.send_until


async def _send_waiting(
    context: DeliveryContext, progress: _BatchProgress, writer: JobWriter
) -> None:
    """One connection's share of the batch: take waiting jobs until none are left."""
    while progress.waiting and not progress.failures:
        job = progress.waiting.popleft()
        if progress.should_stop(job.campaign_id):
            continue
        try:
            outcome = await _deliver_one(
                context,
                job,
                should_stop=functools.partial(progress.should_stop, job.campaign_id),
                before_payload=functools.partial(writer.mark, job.job_id),
            )
        except Exception as error:
            # Start nothing more, but let the other connections finish what they began:
            # handing back a job whose message is still on the wire would send it twice.
            progress.failures.append(error)
            return
        if outcome is None:
            continue
        writer.add(outcome)
        progress.unfinished.discard(job.job_id)
        progress.tally[outcome.state] += 1


async def _watch_campaigns(
    context: DeliveryContext, progress: _BatchProgress, campaign_ids: set[int]
) -> None:
    """Until cancelled: note campaigns paused or cancelled, and keep the leases from expiring."""
    lease_s = context.settings.lease_s
    last_renewal = time.monotonic()
    while True:
        await asyncio.sleep(CAMPAIGN_STATE_POLL_S)
        try:
            states = await asyncio.to_thread(campaign_states, context.database, campaign_ids)
            progress.stopped_campaigns.update(
                campaign_id
                for campaign_id, state in states.items()
                if state != CampaignState.RUNNING
            )
            if time.monotonic() - last_renewal > lease_s / 3:
                await asyncio.to_thread(
                    renew_leases,
                    context.database,
                    list(progress.unfinished),
                    worker_id=context.worker_id,
                    lease_s=lease_s,
                )
                last_renewal = time.monotonic()
        except Exception:
            # One failed look must not end the watching: without renewals the lease runs
            # out and another worker sends what this batch is still sending.
            log.exception("checking campaign states or renewing leases failed; retrying")


async def _deliver_one(
    context: DeliveryContext,
    job: ClaimedJob,
    *,
    should_stop: Callable[[], bool],
    before_payload: BeforePayload,
) -> JobOutcome | None:
    """The job's outcome, or None when nothing was sent and the job goes back (a pause while
    waiting for a permit, or the transmit mark could not be written)."""
    attempted_at = utc_now()
    first_attempt_at = job.first_attempt_at or attempted_at
    attempts = job.attempts + 1
    try:
        campaign = context.prepared(job.campaign_id)
        pipeline: MessagePipeline | RawMimePipeline | None = campaign.pipeline
        if pipeline is None:
            pipeline = await asyncio.to_thread(
                delivery_pipeline, context.database, job.job_id, context.settings, context.signer
            )
        message = await pipeline.message_for(job_id=job.job_id, email=job.email, fields=job.fields)
    except EdmError as error:
        # Data that cannot be rendered fails this recipient only, with the reason recorded.
        return JobOutcome(
            job_id=job.job_id,
            state=JobState.FAILED,
            code=None,
            status=None,
            reply=f"not sent: {error}",
            attempts=attempts,
            first_attempt_at=first_attempt_at,
        )
    bounce_domain = campaign.bounce_domain or pipeline.skeleton.sender_domain
    sender = return_path_for(context.settings.secret, job.job_id, bounce_domain)
    try:
        result = await context.relays.send(
            relay_names=campaign.relay_names,
            sender=sender,
            recipient=job.email,
            message=message,
            should_stop=should_stop,
            before_payload=before_payload,
            transactional=campaign.is_transactional,
        )
    except TransmitNotRecorded as error:
        log.warning("job %d not sent: %s", job.job_id, error)
        return None
    if result is None:
        return None
    return _outcome(context, job, result, attempts=attempts, first_attempt_at=first_attempt_at)


def _outcome(
    context: DeliveryContext,
    job: ClaimedJob,
    result: SendOutcome,
    *,
    attempts: int,
    first_attempt_at: datetime,
) -> JobOutcome:
    now = utc_now()
    common: dict[str, Any] = {
        "job_id": job.job_id,
        "code": result.code,
        "status": result.status,
        "reply": result.message,
        "attempts": attempts,
        "first_attempt_at": first_attempt_at,
        "relay": result.relay,
        "recipient_domain": recipient_domain(job.email) if result.relay else None,
    }
    if result.kind == SendOutcomeKind.ACCEPTED:
        return JobOutcome(state=JobState.SENT, sent_at=now, **common)
    if result.kind == SendOutcomeKind.REJECTED:
        return _rejection(result, common)
    if result.kind == SendOutcomeKind.UNKNOWN and context.settings.unknown_policy == "hold":
        # The relay may have taken it: sending again could deliver it twice, so a person decides
        # (EDM_UNKNOWN_POLICY=retry takes that risk: it is deferred below like a 4xx).
        return JobOutcome(state=JobState.UNKNOWN, **common)
    next_attempt_at = context.retry_policy.next_attempt_at(
        attempts=attempts, first_attempt_at=first_attempt_at, now=now
    )
    if next_attempt_at is None:
        return JobOutcome(state=JobState.EXPIRED, **common)
    return JobOutcome(state=JobState.DEFERRED, next_attempt_at=next_attempt_at, **common)


def _rejection(result: SendOutcome, common: dict[str, Any]) -> JobOutcome:
    reply_class = classify_rejection(result.code, result.status)
    suppression_reason = (
        SuppressionReason.HARD_BOUNCE if reply_class == ReplyClass.HARD_BOUNCE else None
    )
    return JobOutcome(
        state=rejection_state(reply_class), suppression_reason=suppression_reason, **common
    )
