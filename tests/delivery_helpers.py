"""Driving delivery in-process: a campaign to send, due jobs from the dispatcher, a context,
one batch sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from redis.asyncio import Redis

from campaigns.core.models import utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.dispatch import Dispatcher, DispatchLimits
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from tests.smtp_server import RecordingSmtpServer
from workers.delivery.batch import DeliveryContext, deliver_batch


def scheduled_campaign(database: Database, folder: Path, addresses: Sequence[str]) -> int:
    """A campaign to ``addresses``, due now, with a one-line template (rendering is not under
    test); its list, CSV and template are written into ``folder``."""
    csv_path = folder / "people.csv"
    csv_path.write_text("email\n" + "".join(f"{address}\n" for address in addresses))
    import_recipients(database, csv_path, "people")
    template = folder / "template"
    template.mkdir()
    (template / "subject.txt").write_text("Hello")
    (template / "body.html").write_text("<p>Hello {{ email }}</p>")
    campaign = create_campaign(
        database,
        name="Test",
        list_name="people",
        template=str(template),
        from_address="news@example.com",
        templates_dir=folder,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    return campaign.id


def publish_due_jobs(database: Database) -> list[int]:
    """One dispatcher pass; returns the ids it would have put on the broker."""
    published: list[int] = []
    Dispatcher(
        database,
        publish=published.extend,
        queue_depth=lambda: 0,
        limits=DispatchLimits(batch_size=10_000),
    ).run_once()
    return published


def delivery_context(
    database: Database, server: RecordingSmtpServer, redis_url: str, **overrides: object
) -> DeliveryContext:
    """The context a worker process builds, its one relay ``server``, its limits kept in the
    Redis at ``redis_url`` under a namespace of its own."""
    settings = replace(
        Settings(
            secret_key="k",
            smtp_url=server.url,
            smtp_connections=3,
            smtp_timeout_s=5,
            lease_s=30,
            queue_name=f"test-{uuid.uuid4().hex}",
        ),
        **overrides,
    )
    return DeliveryContext.from_settings(
        settings, database=database, redis=Redis.from_url(redis_url), worker_id="test"
    )


def deliver(context: DeliveryContext, job_ids: Sequence[int]) -> None:
    """Send one batch and close the context's connections."""

    async def run() -> None:
        try:
            await deliver_batch(context, job_ids)
        finally:
            await context.relays.close()
            await context.relays.redis.aclose()

    asyncio.run(run())
