"""Delivering one batch of jobs: claim, render, send over pooled connections, record.

This is the function the Celery task, the tests and the benchmark all drive. It runs on one
event loop per worker process; parallelism comes from several SMTP connections in the pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from campaigns.campaign_service import campaign_template, render_context, unsubscribe_url
from campaigns.config import Settings
from campaigns.errors import EdmError
from campaigns.jobs import (
    ClaimedJob,
    JobOutcome,
    campaign_states,
    claim_jobs,
    release_jobs,
    renew_leases,
)
from campaigns.message import MessageSkeleton
from campaigns.models import Campaign, CampaignState, JobState, utc_now
from campaigns.retry_policy import RetryPolicy
from campaigns.storage import Database
from campaigns.templating import CompiledTemplate
from campaigns.tokens import sign_job_token
from workers.outcome_recorder import OutcomeRecorder
from workers.smtp_pool import SendOutcome, SmtpPool

log = logging.getLogger(__name__)

CAMPAIGN_STATE_POLL_S = 0.5
"""How often a sending batch looks for pause and cancel: the bound on how late a pause acts."""


@dataclass(frozen=True)
class PreparedCampaign:
    """What a worker needs to send a campaign, built once per process and campaign."""

    id: int
    name: str
    template: CompiledTemplate
    skeleton: MessageSkeleton
    bounce_domain: str

    @classmethod
    def load(cls, database: Database, campaign_id: int, settings: Settings) -> PreparedCampaign:
        with database.session() as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                raise EdmError(f"campaign {campaign_id} not found")
            skeleton = MessageSkeleton(
                from_address=campaign.from_address, campaign_uuid=campaign.uuid
            )
            return cls(
                id=campaign.id,
                name=campaign.name,
                template=CompiledTemplate(campaign_template(campaign)),
                skeleton=skeleton,
                bounce_domain=settings.bounce_domain or skeleton.sender_domain,
            )


@dataclass
class DeliveryContext:
    settings: Settings
    database: Database
    pool: SmtpPool
    worker_id: str
    campaigns: dict[int, PreparedCampaign] = field(default_factory=dict)

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
                self.database, campaign_id, self.settings
            )
        return self.campaigns[campaign_id]


def return_path(secret: bytes, job_id: int, domain: str) -> str:
    """The per-job envelope sender (VERP): a bounce names its job even when its body does not."""
    return f"bounces+{sign_job_token(secret, 'bounce', job_id)}@{domain}"


@dataclass(frozen=True)
class BatchSummary:
    claimed: int
    outcomes: dict[str, int]
    released: int
    elapsed_s: float


async def deliver_batch(context: DeliveryContext, job_ids: Sequence[int]) -> BatchSummary:
    started = time.monotonic()
    settings = context.settings
    claimed = claim_jobs(
        context.database, job_ids, worker_id=context.worker_id, lease_s=settings.lease_s
    )
    if not claimed:
        return BatchSummary(0, {}, 0, time.monotonic() - started)
    waiting: deque[ClaimedJob] = deque(claimed)
    unfinished = {job.job_id for job in claimed}
    stopped_campaigns: set[int] = set()
    recorder = OutcomeRecorder(context.database)
    tally: Counter[str] = Counter()

    async def send_next() -> None:
        while waiting:
            job = waiting.popleft()
            if job.campaign_id in stopped_campaigns:
                continue
            outcome = await _deliver_one(context, job)
            recorder.add(outcome)
            unfinished.discard(job.job_id)
            tally[outcome.state] += 1

    async def watch_campaigns() -> None:
        last_renewal = time.monotonic()
        campaign_ids = {job.campaign_id for job in claimed}
        while True:
            await asyncio.sleep(CAMPAIGN_STATE_POLL_S)
            states = await asyncio.to_thread(campaign_states, context.database, campaign_ids)
            stopped_campaigns.update(
                campaign_id
                for campaign_id, state in states.items()
                if state != CampaignState.RUNNING
            )
            if time.monotonic() - last_renewal > settings.lease_s / 3:
                last_renewal = time.monotonic()
                await asyncio.to_thread(
                    renew_leases,
                    context.database,
                    list(unfinished),
                    worker_id=context.worker_id,
                    lease_s=settings.lease_s,
                )

    watcher = asyncio.create_task(watch_campaigns())
    try:
        senders = [send_next() for _ in range(min(settings.smtp_connections, len(claimed)))]
        await asyncio.gather(*senders)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await recorder.close()
        released = 0
        if unfinished:
            released = await asyncio.to_thread(
                release_jobs, context.database, list(unfinished), worker_id=context.worker_id
            )
    summary = BatchSummary(len(claimed), dict(tally), released, time.monotonic() - started)
    log.info(
        "batch: claimed %d, outcomes %s, released %d, %.2f s",
        summary.claimed,
        summary.outcomes,
        summary.released,
        summary.elapsed_s,
    )
    return summary


async def _deliver_one(context: DeliveryContext, job: ClaimedJob) -> JobOutcome:
    attempted_at = utc_now()
    first_attempt_at = job.first_attempt_at or attempted_at
    attempts = job.attempts + 1
    try:
        campaign = context.prepared(job.campaign_id)
        link = unsubscribe_url(context.settings.base_url, context.settings.secret, job.job_id)
        rendered = campaign.template.render(
            render_context(
                campaign_name=campaign.name,
                email=job.email,
                fields=job.fields,
                unsubscribe_url=link,
            )
        )
        message = campaign.skeleton.build(
            job_id=job.job_id, to_address=job.email, rendered=rendered, unsubscribe_url=link
        )
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
    sender = return_path(context.settings.secret, job.job_id, campaign.bounce_domain)
    result = await context.pool.send(sender=sender, recipient=job.email, message=message)
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
    common = {
        "job_id": job.job_id,
        "code": result.code,
        "status": result.status,
        "reply": result.message,
        "attempts": attempts,
        "first_attempt_at": first_attempt_at,
    }
    if result.kind == "accepted":
        return JobOutcome(state=JobState.SENT, sent_at=now, **common)
    if result.kind == "rejected":
        return JobOutcome(state=JobState.FAILED, **common)
    if result.kind == "unknown":
        # The relay may have taken it: sending again could deliver it twice, so a person decides.
        return JobOutcome(state=JobState.UNKNOWN, **common)
    next_attempt_at = context.retry_policy.next_attempt_at(
        attempts=attempts, first_attempt_at=first_attempt_at, now=now
    )
    if next_attempt_at is None:
        return JobOutcome(state=JobState.EXPIRED, **common)
    return JobOutcome(state=JobState.DEFERRED, next_attempt_at=next_attempt_at, **common)
