"""Checking the jobs-by-state counts the triggers keep against a real count of the job table."""

from __future__ import annotations

from campaigns.core.storage import Database
from campaigns.jobs.state_counts import job_state_counts, job_state_counts_by_scan


def counted_by_scan(database: Database, campaign_id: int) -> dict[str, int]:
    with database.session() as session:
        return job_state_counts_by_scan(session, campaign_id)


def counts_kept(database: Database, campaign_id: int) -> dict[str, int]:
    """The campaign's counts as the dashboard reads them, states with no job left out."""
    with database.session() as session:
        return {
            state: jobs for state, jobs in job_state_counts(session, campaign_id).items() if jobs
        }


def assert_counts_kept(database: Database, campaign_id: int) -> dict[str, int]:
    """The kept counts equal a GROUP BY over the campaign's jobs; returns them."""
    kept = counts_kept(database, campaign_id)
    assert kept == counted_by_scan(database, campaign_id)
    return kept
