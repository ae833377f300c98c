"""The rates the campaign list shows beside each campaign: sent, delivered, opened, clicked.

Read from the per-state job counts and the event counters (a few rows per campaign, whatever
its size). Sent counts the recipients a relay was tried for and that are finished with;
delivered, those the relay accepted and no bounce came back for. Opens are recipients with a
human open (machine-made pixel loads are not counted), clicks recipients with a click; both
as a share of delivered.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from campaigns.core.models import CampaignCounter, JobState
from campaigns.core.storage import Database
from campaigns.jobs.state_counts import job_state_counts_by_campaign

TRIED_STATES = (
    JobState.SENT,
    JobState.BOUNCED,
    JobState.FAILED,
    JobState.UNKNOWN,
    JobState.EXPIRED,
)
RATE_COUNTERS = ("unique_opens", "unique_clicks")


@dataclass(frozen=True)
class CampaignRates:
    recipients: int
    sent: int
    delivered: int
    opened: int
    clicked: int

    @property
    def sent_rate(self) -> float | None:
        return _share(self.sent, self.recipients)

    @property
    def delivered_rate(self) -> float | None:
        return _share(self.delivered, self.sent)

    @property
    def open_rate(self) -> float | None:
        return _share(self.opened, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _share(self.clicked, self.delivered)


def campaign_rates(database: Database, campaign_ids: Collection[int]) -> dict[int, CampaignRates]:
    """Rates of each campaign named (every one, zeros for one with no jobs)."""
    ids = list(campaign_ids)
    if not ids:
        return {}
    with database.session() as session:
        counts = job_state_counts_by_campaign(session, ids)
        counters: dict[int, dict[str, int]] = {}
        for campaign_id, name, value in session.execute(
            select(CampaignCounter.campaign_id, CampaignCounter.name, CampaignCounter.value).where(
                CampaignCounter.campaign_id.in_(ids), CampaignCounter.name.in_(RATE_COUNTERS)
            )
        ):
            counters.setdefault(campaign_id, {})[name] = value
    rates = {}
    for campaign_id in ids:
        states = counts.get(campaign_id, {})
        events = counters.get(campaign_id, {})
        rates[campaign_id] = CampaignRates(
            recipients=sum(states.values()),
            sent=sum(states.get(str(state), 0) for state in TRIED_STATES),
            delivered=states.get(str(JobState.SENT), 0),
            opened=events.get("unique_opens", 0),
            clicked=events.get("unique_clicks", 0),
        )
    return rates


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None
