"""The dispatcher: the database decides what is due; the broker only carries batches of job ids.

One pass starts campaigns whose time has come, takes back jobs whose worker's lease ran out,
publishes due jobs in batches while the broker's queue has room, completes campaigns with
nothing left to send, and folds the jobs-by-state deltas into their totals (there is one
active dispatcher, so one folder). It never renders or sends mail itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update

from campaigns.core.batching import chunked
from campaigns.core.job_predicates import (
    campaign_has_pending_jobs,
    campaign_is_stream,
    job_is_claimable,
    job_is_ready_to_send,
    job_is_transactional,
)
from campaigns.core.models import Campaign, CampaignState, Job, JobState, utc_now
from campaigns.core.storage import Database, rows_matched
from campaigns.jobs.job_store import release_expired_leases
from campaigns.jobs.state_counts import fold_job_state_deltas

PublishBatch = Callable[[Sequence[int]], None]


@dataclass(frozen=True)
class DispatchPass:
    started_campaigns: int = 0
    released_leases: int = 0
    published_jobs: int = 0
    published_batches: int = 0
    completed_campaigns: int = 0


@dataclass(frozen=True, kw_only=True)
class DispatchLimits:
    batch_size: int = 500
    max_queued_batches: int = 8
    redispatch_after_s: float = 60.0
    retry_lost_in_transmission: bool = False
    """Send again what a dead worker was transmitting (EDM_UNKNOWN_POLICY=retry): may duplicate."""


class Dispatcher:
    def __init__(
        self,
        database: Database,
        *,
        publish: PublishBatch,
        queue_depth: Callable[[], int],
        limits: DispatchLimits,
        publish_transactional: PublishBatch | None = None,
    ) -> None:
        """``publish_transactional`` puts transactional messages on their own queue (default:
        ``publish``); the API publishes them at once, so here they are only the ones whose
        publication was lost, or whose retry has come."""
        self._database = database
        self._publish = publish
        self._publish_transactional = publish_transactional or publish
        self._queue_depth = queue_depth
        self._limits = limits

    def run_once(self, now: datetime | None = None) -> DispatchPass:
        now = now or utc_now()
        started = self._start_due_campaigns(now)
        released = release_expired_leases(
            self._database, now, retry_transmitting=self._limits.retry_lost_in_transmission
        )
        self._cancel_leftovers()
        published, batches = self._publish_due_jobs(now)
        transactional, transactional_batches = self._publish_due_transactional_jobs(now)
        published, batches = published + transactional, batches + transactional_batches
        completed = self._complete_finished_campaigns(now)
        fold_job_state_deltas(self._database)
        return DispatchPass(started, released, published, batches, completed)

    def _start_due_campaigns(self, now: datetime) -> int:
        with self._database.session() as session:
            result = session.execute(
                update(Campaign)
                .where(Campaign.state == CampaignState.SCHEDULED, Campaign.send_at <= now)
                .values(state=CampaignState.RUNNING, started_at=now)
            )
            return rows_matched(result)

    def _cancel_leftovers(self) -> None:
        # A job released by a worker after its campaign was cancelled must not wait forever.
        cancelled = select(Campaign.id).where(Campaign.state == CampaignState.CANCELLED)
        with self._database.session() as session:
            session.execute(
                update(Job)
                .where(Job.campaign_id.in_(cancelled), job_is_claimable())
                .values(state=JobState.CANCELLED, updated_at=utc_now())
            )

    def _publish_due_jobs(self, now: datetime) -> tuple[int, int]:
        room = self._limits.max_queued_batches - self._queue_depth()
        if room <= 0:
            return 0, 0
        job_ids = self._mark_due_jobs(now, ~job_is_transactional(), room * self._limits.batch_size)
        return self._publish_in_batches(job_ids, self._publish)

    def _publish_due_transactional_jobs(self, now: datetime) -> tuple[int, int]:
        # Not held back by the campaign queue's depth: they have a queue of their own.
        job_ids = self._mark_due_jobs(now, job_is_transactional(), self._limits.batch_size)
        return self._publish_in_batches(job_ids, self._publish_transactional)

    def _mark_due_jobs(self, now: datetime, which: ColumnElement[bool], limit: int) -> list[int]:
        # Published long ago and still not claimed: the message was lost (a broker restarted
        # empty); publishing again is safe because a claim is atomic.
        stale = now - timedelta(seconds=self._limits.redispatch_after_s)
        with self._database.session() as session:
            job_ids = list(
                session.scalars(
                    select(Job.id)
                    .where(
                        job_is_ready_to_send(now),
                        which,
                        or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale),
                    )
                    .order_by(Job.id)
                    .limit(limit)
                )
            )
            for ids in chunked(job_ids):
                session.execute(update(Job).where(Job.id.in_(ids)).values(dispatched_at=now))
        return job_ids

    def _publish_in_batches(self, job_ids: list[int], publish: PublishBatch) -> tuple[int, int]:
        # Published after the commit: a crash in between leaves jobs marked as dispatched,
        # and they are published again once stale. The reverse order could lose them.
        batches = list(chunked(job_ids, self._limits.batch_size))
        for batch in batches:
            publish(list(batch))
        return len(job_ids), len(batches)

    def _complete_finished_campaigns(self, now: datetime) -> int:
        pending = campaign_has_pending_jobs()
        with self._database.session() as session:
            # Lock, then decide in a second statement: on PostgreSQL one UPDATE that waited for
            # a campaign row locked by `edm campaigns retry` would still judge "nothing pending"
            # by its snapshot from before the retry re-queued jobs, and complete the campaign.
            finished = session.scalars(
                select(Campaign.id)
                .where(Campaign.state == CampaignState.RUNNING, ~pending, ~campaign_is_stream())
                .with_for_update()
            ).all()
            if not finished:
                return 0
            result = session.execute(
                update(Campaign)
                .where(Campaign.id.in_(finished), Campaign.state == CampaignState.RUNNING, ~pending)
                .values(state=CampaignState.COMPLETED, finished_at=now)
            )
            return rows_matched(result)
