"""Opens and clicks through a Redis stream: appended before the answer, written after it.

A request's event is appended to the stream (``workers.redis_keys.tracking_events_key``) and the
answer goes once Redis has it: the answer waits on one Redis round trip, shared by every request
that arrived meanwhile, never on the database. So a tracking process killed at any moment loses
no event it answered for; what Redis holds is as durable as its persistence setting makes it.

Every tracking process runs an ``EventWriter`` thread in one consumer group: it reads entries,
writes them in batches (``campaigns.tracking.batch_recording``, keyed by entry id, so an entry
written twice counts once), then acknowledges and deletes them, which keeps the stream short.
Entries a writer took and never acknowledged (its process died) are claimed by another writer
after ``claim_after_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

import redis
import redis.asyncio
from sqlalchemy.exc import SQLAlchemyError

from campaigns.core.models import EventKind
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.tracking.batch_recording import TrackedEvent, write_tracked_events
from campaigns.tracking.recording import USER_AGENT_CHARS
from workers.embedded_redis import known_redis_url
from workers.redis_keys import tracking_events_key

log = logging.getLogger(__name__)

WRITER_GROUP = "edm-tracking-writers"
_KIND_CODES = {EventKind.OPENED: "o", EventKind.CLICKED: "c"}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_REDIS_TIMEOUT_S = 5.0
_Entry = tuple[str, dict[str, str]]


def event_fields(
    kind: EventKind, job_id: int, *, user_agent: str | None, link_id: int | None = None
) -> dict[str, str]:
    """The stream entry of one open or click, timed now."""
    fields = {
        "k": _KIND_CODES[kind],
        "j": str(job_id),
        "t": f"{time.time():.6f}",
        "a": (user_agent or "")[:USER_AGENT_CHARS],
    }
    if link_id is not None:
        fields["l"] = str(link_id)
    return fields


class EventQueue:
    """Appends events to the stream; requests that wait at once share one pipelined round trip.

    At most ``max_waiting`` events wait for Redis; past that ``append`` answers False at once, as
    it does when Redis fails, and the caller decides (record it directly, or refuse).
    """

    def __init__(self, redis_url: str, key: str, *, max_waiting: int) -> None:
        self._client = redis.asyncio.Redis.from_url(
            redis_url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
        )
        self._key = key
        self._max_waiting = max_waiting
        self._waiting: list[tuple[dict[str, str], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, fields: dict[str, str]) -> bool:
        """True once Redis holds the event."""
        if len(self._waiting) >= self._max_waiting:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((fields, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        await self._client.aclose()

    async def _flush(self) -> None:
        # While one round trip is out, the next requests gather for the one after it.
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for fields, _ in batch:
                        pipe.xadd(self._key, fields)  # type: ignore[arg-type]
                    await pipe.execute()
                held = True
            except (redis.RedisError, OSError) as error:
                log.warning("tracking events not queued in Redis: %s", error)
                held = False
            for _, future in batch:
                if not future.done():  # its client may have gone away meanwhile
                    future.set_result(held)


class EventWriter(threading.Thread):
    """Writes the stream's events to the database in batches, until ``stop``."""

    def __init__(
        self,
        database: Database,
        redis_url: str,
        key: str,
        *,
        claim_after_s: float,
        batch_size: int = 1000,
        block_s: float = 1.0,
    ) -> None:
        super().__init__(name="edm-tracking-writer", daemon=True)
        self._database = database
        self._client = redis.Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_timeout=block_s + _REDIS_TIMEOUT_S,
            socket_connect_timeout=_REDIS_TIMEOUT_S,
        )
        self._key = key
        self._claim_after_s = claim_after_s
        self._batch_size = batch_size
        self._block_ms = int(block_s * 1000)
        self._consumer = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = threading.Event()
        self._next_claim = 0.0
        self.written = 0
        """Events this writer inserted (not counting those found written already)."""

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        self._client.close()

    def run(self) -> None:
        group_ready = False
        while not self._stopping.is_set():
            try:
                if not group_ready:
                    self._create_group()
                    group_ready = True
                self._step()
            except (redis.RedisError, OSError, SQLAlchemyError) as error:
                # Nothing was acknowledged: the entries are read again on the next step.
                log.warning("tracking events not written yet: %s", " ".join(str(error).split()))
                self._stopping.wait(1.0)

    def _create_group(self) -> None:
        try:
            self._client.xgroup_create(self._key, WRITER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _step(self) -> None:
        # Own unacknowledged entries first (a write that failed), then a dead writer's, then new.
        entries = self._read("0", block=False) or self._claimed() or self._read(">", block=True)
        if entries:
            self._write(entries)

    def _read(self, start: str, *, block: bool) -> list[_Entry]:
        answer = self._client.xreadgroup(
            WRITER_GROUP,
            self._consumer,
            {self._key: start},
            count=self._batch_size,
            block=self._block_ms if block else None,
        )
        streams: list[tuple[str, list[_Entry]]] = answer or []  # type: ignore[assignment]
        return [entry for _, entries in streams for entry in entries]

    def _claimed(self) -> list[_Entry]:
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + self._claim_after_s / 2
        claim_ms = int(self._claim_after_s * 1000)
        answer = self._client.xautoclaim(
            self._key, WRITER_GROUP, self._consumer, claim_ms, count=self._batch_size
        )
        entries: list[_Entry] = answer[1]
        if entries:
            log.info("took over %d tracking events from a writer that stopped", len(entries))
        self._forget_dead_writers(claim_ms)
        return entries

    def _forget_dead_writers(self, idle_ms: int) -> None:
        for consumer in self._client.xinfo_consumers(self._key, WRITER_GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > idle_ms:
                self._client.xgroup_delconsumer(self._key, WRITER_GROUP, consumer["name"])

    def _write(self, entries: list[_Entry]) -> None:
        events = [event for entry in entries if (event := _event_of(*entry)) is not None]
        self.written += write_tracked_events(self._database, events)
        # After the commit: a crash before this line leaves the entries to be written again,
        # which their keys make harmless.
        ids = [entry_id for entry_id, _ in entries]
        pipe = self._client.pipeline(transaction=False)
        pipe.xack(self._key, WRITER_GROUP, *ids)
        pipe.xdel(self._key, *ids)
        pipe.execute()


def _event_of(entry_id: str, fields: dict[str, str] | None) -> TrackedEvent | None:
    try:
        assert fields is not None
        link = fields.get("l")
        return TrackedEvent(
            key=entry_id,
            kind=_KINDS[fields["k"]],
            job_id=int(fields["j"]),
            occurred_at=datetime.fromtimestamp(float(fields["t"]), UTC),
            user_agent=fields.get("a", ""),
            link_id=None if link is None else int(link),
        )
    except (AssertionError, KeyError, ValueError):
        # Only this module writes entries; one it cannot read is dropped, not retried forever.
        log.error("tracking event %s unreadable, dropped: %r", entry_id, fields)
        return None


class QueuedEvents:
    """A process's queue and writer, on the installation's Redis; started and stopped with the
    app that serves the tracking routes."""

    def __init__(self, settings: Settings, database: Database, redis_url: str) -> None:
        key = tracking_events_key(settings.redis_namespace)
        self.queue = EventQueue(redis_url, key, max_waiting=settings.tracking_max_in_flight)
        self.writer = EventWriter(
            database, redis_url, key, claim_after_s=settings.tracking_claim_after_s
        )

    def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.queue.close()
        await asyncio.to_thread(self.writer.stop)


def queued_events(settings: Settings, database: Database) -> QueuedEvents | None:
    """Queued events on the configured Redis (or the embedded one a worker published); None
    when there is none, and then each event is written before its answer."""
    redis_url = known_redis_url(settings.redis_url, settings.data_dir)
    if not redis_url:
        log.warning("tracking events are written before each answer: no Redis (set EDM_REDIS_URL)")
        return None
    return QueuedEvents(settings, database, redis_url)
