"""Jobs by state per campaign, kept by triggers on the job table: every path that changes a
job's state is counted, on SQLite and PostgreSQL, and the counts always equal a real count.

Full campaigns with real workers are checked in tests/faults/test_faults.py (mixed outcomes and
retry, a worker killed mid-send, cancel); here each path is driven on its own, plus folding, the
migration of an existing database, and many writers at once.

Here: counts through a delivery to a real SMTP server; the rest is in
tests/unit/test_job_state_counts.py."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from campaigns.core.models import JobState, JobStateCount, JobStateDelta
from campaigns.core.storage import Database
from campaigns.jobs.state_counts import (
    fold_job_state_deltas,
)
from campaigns.lifecycle.campaign_service import campaign_status, cancel_campaign
from campaigns.lifecycle.failures import retry_failures
from campaigns.lists.suppression import SuppressionReason, add_suppressions
from tests.delivery_helpers import (
    deliver,
    delivery_context,
    publish_due_jobs,
    scheduled_campaign,
)
from tests.smtp_server import RecordingSmtpServer
from tests.state_count_helpers import assert_counts_kept


def _folded_totals(database: Database, campaign_id: int) -> dict[str, int]:
    """Fold, then read the totals table alone: nothing may be left behind in the deltas."""
    fold_job_state_deltas(database)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(JobStateDelta)) == 0
        rows = session.execute(
            select(JobStateCount.state, JobStateCount.jobs).where(
                JobStateCount.campaign_id == campaign_id, JobStateCount.jobs != 0
            )
        )
        return {state: jobs for state, jobs in rows}


def _refusing(address: str) -> tuple[int, str] | None:
    kind = address.split("@")[0].rstrip("0123456789")
    return {
        "gone": (550, "5.1.1 Recipient address rejected: User unknown"),
        "later": (451, "4.7.1 Greylisted, try again later"),
        "plain": (554, "Transaction failed"),
    }.get(kind)


def test_counts_follow_scheduling_delivery_suppression_retry_and_cancel(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    kinds = {"ok": 4, "gone": 2, "later": 2, "plain": 2, "blocked": 1}
    addresses = [f"{kind}{i}@example.com" for kind, n in kinds.items() for i in range(n)]
    campaign_id = scheduled_campaign(database, tmp_path, addresses)
    assert assert_counts_kept(database, campaign_id) == {JobState.QUEUED: 11}

    # Suppressed after scheduling: the claim finds it and marks it instead of sending.
    add_suppressions(database, ["blocked0@example.com"], reason=SuppressionReason.MANUAL)
    with RecordingSmtpServer(behaviour=_refusing) as server:
        deliver(delivery_context(database, server, redis_url), publish_due_jobs(database))
    assert assert_counts_kept(database, campaign_id) == {
        JobState.SENT: 4,
        JobState.BOUNCED: 2,
        JobState.DEFERRED: 2,
        JobState.FAILED: 2,
        JobState.SUPPRESSED: 1,
    }

    retried = retry_failures(database, campaign_id)
    assert (retried.due_now, sum(retried.requeued.values())) == (2, 2)
    assert assert_counts_kept(database, campaign_id) == {
        JobState.SENT: 4,
        JobState.BOUNCED: 2,
        JobState.DEFERRED: 2,
        JobState.QUEUED: 2,
        JobState.SUPPRESSED: 1,
    }

    cancel_campaign(database, campaign_id)
    kept = assert_counts_kept(database, campaign_id)
    assert kept == {
        JobState.SENT: 4,
        JobState.BOUNCED: 2,
        JobState.CANCELLED: 4,
        JobState.SUPPRESSED: 1,
    }
    assert _folded_totals(database, campaign_id) == kept
    assert campaign_status(database, campaign_id).counts == {
        **{str(state): 0 for state in JobState},
        **kept,
    }
