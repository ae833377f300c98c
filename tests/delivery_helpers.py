"""Driving delivery in-process: due jobs from the dispatcher, a context, one batch sent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from campaigns.config import Settings
from campaigns.dispatch import Dispatcher, DispatchLimits
from campaigns.storage import Database
from tests.smtp_server import RecordingSmtpServer
from workers.delivery import DeliveryContext, deliver_batch
from workers.smtp_pool import SmtpPool
from workers.smtp_url import parse_smtp_url


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
    database: Database, server: RecordingSmtpServer, **overrides: object
) -> DeliveryContext:
    settings = replace(Settings(secret_key="k", smtp_connections=3, lease_s=30), **overrides)
    pool = SmtpPool(
        parse_smtp_url(server.url),
        size=settings.smtp_connections,
        timeout_s=5,
        data_timeout_s=settings.smtp_data_timeout_s,
    )
    return DeliveryContext(settings=settings, database=database, pool=pool, worker_id="test")


def deliver(context: DeliveryContext, job_ids: Sequence[int]) -> None:
    """Send one batch and close the context's connections."""

    async def run() -> None:
        try:
            await deliver_batch(context, job_ids)
        finally:
            await context.pool.close()

    asyncio.run(run())
