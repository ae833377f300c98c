"""The bounce corpus (``tests/bounce_corpus/``) filled in for a job, and jobs to bounce."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from campaigns.bounces.verp import message_id_tagger, return_path_for
from campaigns.content.message import message_id_for
from campaigns.core.models import Campaign, Job, JobState, Recipient, utc_now
from campaigns.core.storage import Database
from tests.factories import campaign_with_jobs

CORPUS_DIR = Path(__file__).resolve().parent / "bounce_corpus"
BOUNCE_DOMAIN = "bounces.example.com"


@dataclass(frozen=True)
class SentJob:
    job_id: int
    campaign_id: int
    recipient: str
    return_path: str
    message_id: str


def corpus_message(
    name: str, *, return_path: str, message_id: str, recipient: str, crlf: bool = True
) -> bytes:
    """A corpus message with its placeholders filled in, CRLF line endings as on the wire."""
    raw = (CORPUS_DIR / f"{name}.eml").read_bytes()
    for placeholder, value in (
        (b"${RETURN_PATH}", return_path),
        (b"${MESSAGE_ID}", message_id),
        (b"${RECIPIENT}", recipient),
    ):
        raw = raw.replace(placeholder, value.encode())
    if crlf:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw


def message_for(job: SentJob, name: str) -> bytes:
    return corpus_message(
        name, return_path=job.return_path, message_id=job.message_id, recipient=job.recipient
    )


def sent_jobs(database: Database, count: int, *, secret: bytes) -> list[SentJob]:
    """A running campaign of ``count`` recipients whose messages the relay has taken."""
    campaign_id, job_ids = campaign_with_jobs(database, count)
    now = utc_now()
    with database.session() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(state=JobState.SENT, attempts=1, last_code=250, sent_at=now, updated_at=now)
        )
        campaign_uuid = session.scalar(select(Campaign.uuid).where(Campaign.id == campaign_id))
        emails = dict(
            session.execute(
                select(Job.id, Recipient.email)
                .join(Recipient, Recipient.id == Job.recipient_id)
                .where(Job.id.in_(job_ids))
            ).all()
        )
    tag = message_id_tagger(secret)
    return [
        SentJob(
            job_id=job_id,
            campaign_id=campaign_id,
            recipient=emails[job_id],
            return_path=return_path_for(secret, job_id, BOUNCE_DOMAIN),
            message_id=message_id_for(str(campaign_uuid), job_id, "news.example.com", tag(job_id)),
        )
        for job_id in job_ids
    ]
