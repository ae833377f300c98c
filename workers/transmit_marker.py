"""Marks jobs ``transmitting`` just before their data goes to the relay, grouping the writes.

The mark is what makes a crash safe: a job whose worker dies while it is marked ends
``unknown`` instead of being sent again by another worker. Each send waits for its own mark
to be committed; marks requested while a write is under way share the next one.
"""

from __future__ import annotations

import asyncio

from campaigns.jobs import mark_transmitting
from campaigns.storage import Database


class TransmitNotRecorded(Exception):
    """The mark could not be written, or the job is no longer this worker's: do not send."""


class TransmitMarker:
    def __init__(self, database: Database, worker_id: str) -> None:
        self._database = database
        self._worker_id = worker_id
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._writer: asyncio.Task[None] | None = None

    async def mark(self, job_id: int) -> None:
        """Return once the job is marked; raise TransmitNotRecorded when it cannot be."""
        future = asyncio.get_running_loop().create_future()
        self._pending[job_id] = future
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await future

    async def _write_pending(self) -> None:
        while self._pending:
            waiting, self._pending = self._pending, {}
            try:
                marked = await asyncio.to_thread(
                    mark_transmitting, self._database, list(waiting), worker_id=self._worker_id
                )
            except Exception as error:
                for future in waiting.values():
                    future.set_exception(TransmitNotRecorded(f"marking failed: {error}"))
                continue
            for job_id, future in waiting.items():
                if job_id in marked:
                    future.set_result(None)
                else:
                    future.set_exception(TransmitNotRecorded("the job is no longer ours"))
