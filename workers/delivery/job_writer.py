"""Writes a sending batch's transmit marks and outcomes, together, in as few transactions as it can.

A send asks for its job's mark just before the message data goes to the relay and waits until
it is committed: a worker that dies after that point leaves the job ``transmitting``, which ends
``unknown``, never sent again. An outcome is handed over without waiting; a crash before it is
written leaves the job ``transmitting`` too. Marks and outcomes that arrive while a write is
under way share the next one: on SQLite every transaction takes the write lock that all the
worker processes share, so fewer of them is what lets two processes send at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from campaigns.core.storage import Database
from campaigns.jobs.job_store import JobOutcome, write_jobs
from workers.delivery.send_rate_counters import SendRateCounters

log = logging.getLogger(__name__)

WRITE_RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 15, 30, 30, 30)
"""Between attempts to write outcomes; a lost "sent" would leave a delivered job ``unknown``."""


class TransmitNotRecorded(Exception):
    """The mark could not be written, or the job is no longer this worker's: do not send."""


class JobWriter:
    """``send_rate_counters``, when given, also counts each written group of outcomes in Redis.
    ``sleep`` waits between attempts to write (tests pass one that only records the delays)."""

    def __init__(
        self,
        database: Database,
        worker_id: str,
        send_rate_counters: SendRateCounters | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._database = database
        self._worker_id = worker_id
        self._send_rate_counters = send_rate_counters
        self._sleep = sleep
        self._marks: dict[int, asyncio.Future[None]] = {}
        self._outcomes: list[JobOutcome] = []
        self._writer: asyncio.Task[None] | None = None

    async def mark(self, job_id: int) -> None:
        """Return once the job is marked; raise TransmitNotRecorded when it cannot be."""
        future = asyncio.get_running_loop().create_future()
        self._marks[job_id] = future
        self._start_writing()
        await future

    def add(self, outcome: JobOutcome) -> None:
        self._outcomes.append(outcome)
        self._start_writing()

    async def close(self) -> None:
        """Return once every outcome is written; raise when they could not be."""
        # Every add() starts a writer if none runs, and a writer runs until nothing is left.
        if self._writer is not None:
            await self._writer

    def _start_writing(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())

    async def _write_pending(self) -> None:
        failed_writes = 0
        while self._marks or self._outcomes:
            marks, self._marks = self._marks, {}
            outcomes, self._outcomes = self._outcomes, []
            try:
                marked = await asyncio.to_thread(
                    write_jobs,
                    self._database,
                    outcomes=outcomes,
                    transmitting=list(marks),
                    worker_id=self._worker_id,
                )
            except Exception as error:
                _refuse(marks, error)
                if not outcomes:
                    continue
                # Marks asked for meanwhile wait for the retry: nothing more is sent while
                # what was sent cannot be recorded.
                self._outcomes[:0] = outcomes
                if failed_writes == len(WRITE_RETRY_DELAYS_S):
                    marks, self._marks = self._marks, {}
                    _refuse(marks, error)
                    raise
                delay_s = WRITE_RETRY_DELAYS_S[failed_writes]
                failed_writes += 1
                log.exception(
                    "writing %d outcomes failed; retrying in %s s", len(outcomes), delay_s
                )
                await self._sleep(delay_s)
                continue
            failed_writes = 0
            for job_id, future in marks.items():
                if job_id in marked:
                    future.set_result(None)
                else:
                    future.set_exception(TransmitNotRecorded("the job is no longer ours"))
            if outcomes and self._send_rate_counters is not None:
                await self._send_rate_counters.count(outcomes)


def _refuse(marks: dict[int, asyncio.Future[None]], error: Exception) -> None:
    for future in marks.values():
        future.set_exception(TransmitNotRecorded(f"marking failed: {error}"))
