"""Rows for tests that need campaigns and jobs without going through import and scheduling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from campaigns.core.models import (
    Campaign,
    CampaignState,
    Job,
    JobState,
    Recipient,
    RecipientList,
    utc_now,
)
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


def set_jobs(database: Database, outcomes: dict[int, dict[str, Any]]) -> None:
    with database.session() as session:
        for job_id, values in outcomes.items():
            session.execute(update(Job).where(Job.id == job_id).values(**values))


def campaign_in_every_state(database: Database) -> tuple[int, dict[str, int]]:
    names = [
        "sent",
        "deferred",
        "expired",
        "hard",
        "soft",
        "policy",
        "plain",
        "not_sent",
        "unknown",
        "suppressed",
        "cancelled",
    ]
    campaign_id, job_ids = campaign_with_jobs(database, len(names), state=CampaignState.COMPLETED)
    ids = dict(zip(names, job_ids, strict=True))
    later = utc_now() + timedelta(hours=1)
    long_ago = utc_now() - timedelta(days=4)
    refused = {"attempts": 1, "first_attempt_at": long_ago}
    set_jobs(
        database,
        {
            ids["sent"]: {"state": JobState.SENT, "last_code": 250, "attempts": 1},
            ids["deferred"]: {
                "state": JobState.DEFERRED,
                "last_code": 451,
                "last_status": "4.7.1",
                "last_reply": "451 4.7.1 Greylisted",
                "next_attempt_at": later,
                "attempts": 2,
            },
            ids["expired"]: {"state": JobState.EXPIRED, "last_code": 450, **refused},
            ids["hard"]: {"state": JobState.BOUNCED, "last_code": 550, "last_status": "5.1.1"},
            ids["soft"]: {
                "state": JobState.BOUNCED,
                "last_code": 552,
                "last_status": "5.2.2",
                **refused,
            },
            ids["policy"]: {"state": JobState.FAILED, "last_code": 550, "last_status": "5.7.1"},
            ids["plain"]: {"state": JobState.FAILED, "last_code": 554, "last_reply": "=cmd|x"},
            ids["not_sent"]: {"state": JobState.FAILED, "last_reply": "not sent: x undefined"},
            ids["unknown"]: {"state": JobState.UNKNOWN, "attempts": 1},
            ids["suppressed"]: {"state": JobState.SUPPRESSED},
            ids["cancelled"]: {"state": JobState.CANCELLED},
        },
    )
    return campaign_id, ids
