"""Jobs by state per campaign, read from counts the job table's triggers keep.

Migration 0006 installs the triggers, so every path that creates, changes or deletes a job is
counted. On SQLite (one writer at a time) they write ``job_state_counts`` directly. On
PostgreSQL they insert aggregated deltas instead, one row per (campaign, state) a statement
changed: concurrent transactions then never wait on a shared counter row, nor deadlock by
taking two in opposite orders. ``fold_job_state_deltas`` (run by the dispatcher every pass)
adds them into ``job_state_counts``. Readers add the deltas not folded yet in the same
statement, so counts are exact whenever read, and cost a few rows whatever the campaign's size.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, bindparam, func, select, text, union_all
from sqlalchemy.orm import Session

from campaigns.core.models import Job, JobState, JobStateCount, JobStateDelta
from campaigns.core.storage import Database, rows_matched

# One statement, one snapshot: the deltas it deletes are exactly the ones it adds, and a reader
# sees them either here or in the totals, never both or neither. Another folder running at the
# same time (a dispatcher that just lost its lock) waits for these rows and then skips them.
_FOLD_POSTGRESQL = text(
    """
    WITH folded AS (
        DELETE FROM job_state_deltas RETURNING campaign_id, state, jobs
    )
    INSERT INTO job_state_counts (campaign_id, state, jobs)
    SELECT campaign_id, state, sum(jobs) FROM folded
    WHERE campaign_id IN (SELECT id FROM campaigns)
    GROUP BY campaign_id, state
    ORDER BY campaign_id, state
    ON CONFLICT (campaign_id, state) DO UPDATE SET jobs = job_state_counts.jobs + excluded.jobs
    """
)


def job_state_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """The campaign's jobs in each state, every state named (zero when no job is in it)."""
    counts = {str(state): 0 for state in JobState}
    counts.update(job_state_counts_by_campaign(session, [campaign_id]).get(campaign_id, {}))
    return counts


def job_state_counts_by_campaign(
    session: Session, campaign_ids: Collection[int]
) -> dict[int, dict[str, int]]:
    """Jobs by state of each campaign named that has jobs; states with none are left out."""
    if not campaign_ids:
        return {}
    rows = session.execute(_BY_CAMPAIGN, {"campaign_ids": list(campaign_ids)})
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, state, jobs in rows:
        if jobs:
            counts.setdefault(campaign_id, {})[state] = int(jobs)
    return counts


def job_state_totals(session: Session) -> dict[str, int]:
    """Jobs by state over every campaign; states with none are left out."""
    rows = session.execute(_TOTALS)
    return {state: int(jobs) for state, jobs in rows if jobs}


def job_state_counts_by_scan(session: Session, campaign_id: int) -> dict[str, int]:
    """The same counts from the job table itself: a scan of the campaign's jobs, for checking
    the kept counts and for measuring what they save, never for pages."""
    rows = session.execute(
        select(Job.state, func.count()).where(Job.campaign_id == campaign_id).group_by(Job.state)
    )
    return {state: count for state, count in rows}


def fold_job_state_deltas(database: Database) -> int:
    """Add the PostgreSQL triggers' deltas into the totals; returns the totals rows changed.

    Called by the one dispatcher holding the lock, though two at once stay correct. On SQLite
    there is nothing to fold: its triggers write the totals themselves.
    """
    if database.engine.dialect.name != "postgresql":
        return 0
    with database.session() as session:
        return rows_matched(session.execute(_FOLD_POSTGRESQL))


def _summed(*, by_campaign: bool) -> Select[Any]:
    parts = []
    for table in (JobStateCount, JobStateDelta):
        part = select(table.campaign_id, table.state, table.jobs)
        if by_campaign:
            part = part.where(table.campaign_id.in_(bindparam("campaign_ids", expanding=True)))
        parts.append(part)
    rows = union_all(*parts).subquery()
    keys = (rows.c.campaign_id, rows.c.state) if by_campaign else (rows.c.state,)
    return select(*keys, func.sum(rows.c.jobs)).group_by(*keys)


# Built once: building these statements took longer than running them.
_BY_CAMPAIGN = _summed(by_campaign=True)
_TOTALS = _summed(by_campaign=False)
