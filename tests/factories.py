"""Rows for tests that need campaigns and jobs without going through import and scheduling."""

from __future__ import annotations

from campaigns.core.models import Campaign, CampaignState, Job, Recipient, RecipientList, utc_now
from campaigns.core.storage import Database


def campaign_with_jobs(
    database: Database,
    recipients: int,
    *,
    state: str = CampaignState.RUNNING,
    relays: list[str] | None = None,
) -> tuple[int, list[int]]:
    with database.session() as session:
        recipient_list = RecipientList(name=f"list-{utc_now().timestamp()}", field_names=["email"])
        session.add(recipient_list)
        session.flush()
        people = [
            Recipient(
                list_id=recipient_list.id,
                email=f"person{i}@example.com",
                email_key=f"person{i}@example.com",
                fields={"email": f"person{i}@example.com"},
            )
            for i in range(recipients)
        ]
        session.add_all(people)
        campaign = Campaign(
            name="c",
            list_id=recipient_list.id,
            state=state,
            from_address="news@example.com",
            template_name="t",
            subject_template="s",
            html_template="<p>h</p>",
            send_at=utc_now(),
            relays=relays,
        )
        session.add(campaign)
        session.flush()
        jobs = [Job(campaign_id=campaign.id, recipient_id=person.id) for person in people]
        session.add_all(jobs)
        session.flush()
        return campaign.id, [job.id for job in jobs]
