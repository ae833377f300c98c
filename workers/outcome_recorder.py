"""Writes delivery outcomes as they happen, grouping those that arrive during a write.

An outcome is written moments after the relay's reply. A crash before the write leaves the job
``transmitting`` (workers/transmit_marker.py), which ends ``unknown``, never sent again.
"""

from __future__ import annotations

import asyncio
import logging

from campaigns.jobs import JobOutcome, record_outcomes
from campaigns.storage import Database
from workers.send_rate_counters import SendRateCounters

log = logging.getLogger(__name__)

WRITE_RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 15, 30, 30, 30)


class OutcomeRecorder:
    """``send_rate_counters``, when given, also counts each written group in Redis."""

    def __init__(
        self, database: Database, send_rate_counters: SendRateCounters | None = None
    ) -> None:
        self._database = database
        self._send_rate_counters = send_rate_counters
        self._pending: list[JobOutcome] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, outcome: JobOutcome) -> None:
        self._pending.append(outcome)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer
        if self._pending:
            await self._write_pending()

    async def _write_pending(self) -> None:
        while self._pending:
            outcomes, self._pending = self._pending, []
            await self._write(outcomes)
            if self._send_rate_counters is not None:
                await self._send_rate_counters.count(outcomes)

    async def _write(self, outcomes: list[JobOutcome]) -> None:
        # A lost "sent" record would leave the job unknown though it arrived: keep trying.
        for delay_s in (*WRITE_RETRY_DELAYS_S, None):
            try:
                await asyncio.to_thread(record_outcomes, self._database, outcomes)
                return
            except Exception:
                if delay_s is None:
                    raise
                log.exception(
                    "writing %d outcomes failed; retrying in %s s", len(outcomes), delay_s
                )
                await asyncio.sleep(delay_s)
