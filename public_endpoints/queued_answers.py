"""Opens and clicks answered from their token, their events queued: what both the tracking
routes and their fast path (``public_endpoints.tracking_fast_path``) do with one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from campaigns.core.models import EventKind
from campaigns.core.storage import Database
from campaigns.tracking.recording import link_target, record_click, record_open
from public_endpoints.tracking_events import EventQueue, event_fields

_LINK_URLS_KEPT = 10_000
"""Link URLs a process remembers; emptied when full (per-recipient URLs never repeat)."""


class QueuedAnswers:
    def __init__(self, database: Database, events: EventQueue) -> None:
        self._database = database
        self._events = events
        # A link id is a hash of its URL (``campaigns.tracking.links``), so id -> URL never
        # changes and holds for every campaign; the token's MAC proves the sender paired this
        # job with this link. The database is asked once per link and process.
        self._link_urls: dict[int, str] = {}

    async def record_open(self, job_id: int, user_agent: str | None) -> None:
        fields = event_fields(EventKind.OPENED, job_id, user_agent=user_agent)
        if not await self._events.append(fields):
            await run_in_threadpool(record_open, self._database, job_id, user_agent=user_agent)

    def cached_link_url(self, link_id: int) -> str | None:
        return self._link_urls.get(link_id)

    async def link_url(self, job_id: int, link_id: int) -> str | None:
        """The URL of the job's link; None when the job's campaign has no such link."""
        url = self._link_urls.get(link_id)
        if url is None:
            url = await run_in_threadpool(link_target, self._database, job_id, link_id)
            if url is None:
                return None
            if len(self._link_urls) >= _LINK_URLS_KEPT:
                self._link_urls.clear()
            self._link_urls[link_id] = url
        return url

    async def record_click(self, job_id: int, link_id: int, user_agent: str | None) -> None:
        fields = event_fields(EventKind.CLICKED, job_id, user_agent=user_agent, link_id=link_id)
        if not await self._events.append(fields):
            # Never refused: recorded directly instead, the redirect waiting on the database.
            await run_in_threadpool(
                record_click, self._database, job_id, link_id, user_agent=user_agent
            )
