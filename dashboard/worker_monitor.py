"""What the workers are doing, read from Celery and Redis rather than guessed.

Two background threads keep a snapshot that pages and ``/metrics`` read without waiting:

- the *event listener* consumes Celery's worker events (online, heartbeat every two seconds,
  offline) from the broker: each heartbeat carries the worker's active and processed task counts;
  a worker whose heartbeats stop is gone (killed, or its host lost), one that says goodbye is
  gone at once;
- the *sampler* asks each newly seen worker, through Celery's remote control (``inspect``, one
  second at most), for its process id, concurrency and queues, so workers of other installations
  sharing the Redis are left out; and every couple of seconds reads the broker's queue length,
  the relays' and domains' rates in force (``workers.relays.rates``) and the rates measured
  through each (``workers.delivery.send_rate_counters``), and jobs by state from the counts the job
  table's triggers keep (``campaigns.jobs.state_counts``: a few rows, however big the campaigns),
  from which the send rate, the jobs due and the stuck alarm follow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from redis.asyncio import Redis
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from campaigns.core.errors import EdmError
from campaigns.core.job_predicates import (
    job_attempt_is_later,
    job_campaign_is_running,
    job_is_claimable,
)
from campaigns.core.models import (
    CLAIMABLE_JOB_STATES,
    PENDING_JOB_STATES,
    Campaign,
    CampaignState,
    Job,
    JobState,
    utc_now,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.state_counts import job_state_counts_by_campaign, job_state_totals
from workers.celery_app import make_celery
from workers.delivery.send_rate_counters import measured_send_rates
from workers.embedded_redis import known_redis_url, redacted_url
from workers.liveness import is_our_worker, is_transactional_lane, queue_depth
from workers.relays.config import load_relay_config
from workers.relays.rates import effective_rates

log = logging.getLogger("edm.dashboard.workers")

GONE_WORKERS_KEPT_S = 3600.0
RATE_WINDOW_S = 60.0
BUSIEST_DOMAINS = 10
"""Domains shown by their measured rate, besides those with a limit or a slow-down."""
NO_REDIS_YET = "no Redis yet: start a worker (`edm worker`) or set EDM_REDIS_URL"
WATCHED_CAMPAIGN_STATES = (CampaignState.RUNNING, CampaignState.PAUSED, CampaignState.SCHEDULED)
MAX_SAMPLE_PAUSE_S = 1.5
"""Counts shown live are at most about this old (plus one pass)."""
TRANSACTIONAL_LANE = "transactional"
LATER_RECOUNT_FACTOR = 20.0
"""Jobs planned for later are recounted after 20 times as long as counting them took."""


@dataclass
class WorkerInfo:
    hostname: str
    pid: int | None = None
    concurrency: int | None = None
    queues: tuple[str, ...] | None = None
    """None until the worker answered ``inspect``."""
    active: int = 0
    processed: int = 0
    heartbeat_interval_s: float = 2.0
    first_seen: float = 0.0
    last_heartbeat: float = 0.0
    """Seconds since the epoch on this host's clock (not the worker's)."""
    said_goodbye_at: float | None = None
    loadavg: tuple[float, ...] = ()

    @property
    def host(self) -> str:
        return self.hostname.partition("@")[2] or self.hostname

    def online_at(self, now: float) -> bool:
        if self.said_goodbye_at is not None:
            return False
        # Celery's own rule is twice the interval; a loaded host gets a little more.
        return now - self.last_heartbeat <= max(2.5 * self.heartbeat_interval_s, 6.0)


@dataclass(frozen=True)
class WorkerRow:
    hostname: str
    host: str
    pid: int | None
    concurrency: int | None
    active: int
    processed: int
    online: bool
    last_heartbeat: datetime | None
    queues: list[str] | None
    lane: str = "campaign"
    """``transactional`` for the processes of ``edm worker`` that take one-to-one mail only."""


@dataclass(frozen=True)
class RelayLimitRow:
    name: str
    url: str
    per_second: float | None
    per_hour: int | None
    per_day: int | None
    max_connections: int | None
    connections_in_use: int
    sent_last_hour: int | None
    sent_last_day: int | None
    closed_for_s: float
    closed_reason: str | None
    sent_per_second: float | None = None
    """Messages it gave its verdict on per second over the last minute; None: not measured."""


@dataclass(frozen=True)
class DomainLimitRow:
    domain: str
    configured_per_second: float | None
    effective_per_second: float | None
    slowdown_factor: float
    sent_per_second: float | None = None
    """Messages sent to it per second over the last minute; None: not measured."""


@dataclass(frozen=True)
class WorkersSnapshot:
    broker: str
    """The Redis URL, without its password; empty when none is known yet."""
    broker_error: str | None
    workers: list[WorkerRow]
    queued_batches: int | None
    """Batches of job ids waiting in the broker."""
    due_jobs: int | None
    """Jobs of running campaigns due now that no worker has finished yet."""
    jobs_by_state: dict[str, int]
    send_rate_per_s: float | None
    """Messages finished per second over the last minute (sent or refused)."""
    sent_rate_per_s: float | None
    send_rate_limit: float | None
    relays: list[RelayLimitRow]
    domains: list[DomainLimitRow]
    rates_error: str | None
    stuck: str | None
    """Why the alarm is on: work is waiting and nothing has finished for a while; else None."""
    sampled_at: datetime | None

    @property
    def online(self) -> int:
        return sum(1 for worker in self.workers if worker.online)

    @property
    def transactional_processes(self) -> int:
        """Processes of the transactional lane online (its node's pool size)."""
        return sum(
            worker.concurrency or 0
            for worker in self.workers
            if worker.online and worker.lane == TRANSACTIONAL_LANE
        )


@dataclass
class _Sample:
    at: float
    finished: dict[int, int]
    """Jobs with nothing left to do, by campaign."""
    sent: dict[int, int]


@dataclass
class _State:
    workers: dict[str, WorkerInfo] = field(default_factory=dict)
    broker: str = ""
    broker_error: str | None = "not connected yet"
    queued_batches: int | None = None
    due_jobs: int | None = None
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    samples: deque[_Sample] = field(default_factory=lambda: deque(maxlen=600))
    last_progress_at: float = 0.0
    relays: list[RelayLimitRow] = field(default_factory=list)
    domains: list[DomainLimitRow] = field(default_factory=list)
    send_rate_limit: float | None = None
    rates_error: str | None = None
    sampled_at: datetime | None = None


class WorkerMonitor:
    """Start once (``start``), read any time (``snapshot``), ``stop`` at the end.

    ``stuck_after_s``: with work waiting, this long without a finished job raises the alarm.
    ``sample_interval_s``: how often the database and Redis are read.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        stuck_after_s: float = 120.0,
        sample_interval_s: float = 1.0,
        inspect_timeout_s: float = 1.0,
    ) -> None:
        self._settings = settings
        self._database = database
        self._stuck_after_s = stuck_after_s
        self._sample_interval_s = sample_interval_s
        self._inspect_timeout_s = inspect_timeout_s
        self._lock = threading.Lock()
        self._state = _State()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._receiver: Any = None
        self._wanted_inspections: set[str] = set()
        self._later = 0
        self._later_recount_at = 0.0

    # --- Reading -------------------------------------------------------------------------

    def snapshot(self) -> WorkersSnapshot:
        now = time.time()
        with self._lock:
            state = self._state
            workers = sorted(
                (replace(worker) for worker in state.workers.values() if self._ours(worker)),
                key=lambda worker: (worker.host, worker.pid or 0, worker.hostname),
            )
            samples = list(state.samples)
            snapshot_fields: dict[str, Any] = {
                "broker": state.broker,
                "broker_error": state.broker_error,
                "queued_batches": state.queued_batches,
                "due_jobs": state.due_jobs,
                "jobs_by_state": dict(state.jobs_by_state),
                "relays": list(state.relays),
                "domains": list(state.domains),
                "send_rate_limit": state.send_rate_limit,
                "rates_error": state.rates_error,
                "sampled_at": state.sampled_at,
            }
            last_progress_at = state.last_progress_at
        rows = [
            WorkerRow(
                hostname=worker.hostname,
                host=worker.host,
                pid=worker.pid,
                concurrency=worker.concurrency,
                active=worker.active if worker.online_at(now) else 0,
                processed=worker.processed,
                online=worker.online_at(now),
                last_heartbeat=datetime.fromtimestamp(worker.last_heartbeat, UTC)
                if worker.last_heartbeat
                else None,
                queues=list(worker.queues) if worker.queues is not None else None,
                lane=TRANSACTIONAL_LANE if is_transactional_lane(worker.hostname) else "campaign",
            )
            for worker in workers
        ]
        finished_rate, sent_rate = _rates(samples)
        stuck = self._stuck_reason(rows, snapshot_fields, last_progress_at, now)
        return WorkersSnapshot(
            workers=rows,
            send_rate_per_s=finished_rate,
            sent_rate_per_s=sent_rate,
            stuck=stuck,
            **snapshot_fields,
        )

    def _ours(self, worker: WorkerInfo) -> bool:
        return is_our_worker(worker.hostname, worker.queues, self._settings.queue_name)

    def _stuck_reason(
        self, rows: list[WorkerRow], fields: dict[str, Any], last_progress_at: float, now: float
    ) -> str | None:
        waiting = (fields["queued_batches"] or 0) + (fields["due_jobs"] or 0)
        if not waiting or not last_progress_at:
            return None
        idle_s = now - last_progress_at
        if idle_s < self._stuck_after_s:
            return None
        online = sum(1 for row in rows if row.online)
        what = f"{fields['due_jobs'] or 0} jobs are due"
        if fields["queued_batches"]:
            what += f" and {fields['queued_batches']} batches wait in the queue"
        if not online:
            return f"{what}, but no worker is online (start one with `edm worker`)"
        return (
            f"{what}, but nothing has been sent for {idle_s:.0f} s although {online} "
            f"worker{'s are' if online != 1 else ' is'} online: a worker may be stuck, or every "
            f"relay refuses connections (see the relays below and the worker logs)"
        )

    # --- Running -------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for target, name in (
            (self._listen_for_events, "edm-worker-events"),
            (self._sample_forever, "edm-worker-sampler"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def redis_url(self) -> str:
        """The configured Redis, else the embedded one a worker of this installation published."""
        return known_redis_url(self._settings.redis_url, self._settings.data_dir)

    def _celery(self, url: str) -> Any:
        return make_celery(self._settings, url)

    # --- Celery events -------------------------------------------------------------------

    def _listen_for_events(self) -> None:
        while not self._stop.is_set():
            url = self.redis_url()
            if not url:
                self._set_broker(
                    "", "no Redis yet: start a worker (`edm worker`) or set EDM_REDIS_URL"
                )
                self._stop.wait(2.0)
                continue
            try:
                app = self._celery(url)
                with app.connection_for_read() as connection:
                    receiver = app.events.Receiver(
                        connection,
                        handlers={"*": self._on_event},
                        routing_key="worker.#",
                    )
                    # Give up on a Redis that is down and come back here, rather than retrying
                    # forever inside kombu where a stop request is not seen.
                    receiver.connect_max_retries = 1
                    self._receiver = receiver
                    if self._stop.is_set():
                        return
                    self._set_broker(redacted_url(url), None)
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as error:
                if self._stop.is_set():
                    return
                self._set_broker(
                    redacted_url(url), f"cannot read worker events: {_one_line(error)}"
                )
                log.warning("worker events from %s: %s", redacted_url(url), _one_line(error))
                self._stop.wait(2.0)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        hostname = str(event.get("hostname", ""))
        if not kind.startswith("worker-") or not hostname:
            return
        received = float(event.get("local_received") or time.time())
        with self._lock:
            worker = self._state.workers.get(hostname)
            if worker is None or (kind == "worker-online" and worker.said_goodbye_at is not None):
                worker = WorkerInfo(hostname=hostname, first_seen=received)
                self._state.workers[hostname] = worker
                self._wanted_inspections.add(hostname)
            if kind == "worker-offline":
                worker.said_goodbye_at = received
                return
            worker.last_heartbeat = received
            worker.said_goodbye_at = None
            worker.pid = int(event.get("pid") or 0) or worker.pid
            worker.heartbeat_interval_s = float(event.get("freq") or worker.heartbeat_interval_s)
            worker.active = int(event.get("active") or 0)
            worker.processed = int(event.get("processed") or 0)
            worker.loadavg = tuple(event.get("loadavg") or ())

    # --- Sampling ------------------------------------------------------------------------

    def _sample_forever(self) -> None:
        rates_due = 0.0
        while not self._stop.is_set():
            url = self.redis_url()
            self._inspect_new_workers(url)
            self._sample_broker(url)
            started = time.monotonic()
            self._sample_database()
            # A slow database (or one busy sending) is never read more than a quarter of the time.
            pause_s = max(self._sample_interval_s, 3 * (time.monotonic() - started))
            if time.monotonic() >= rates_due:
                self._sample_rates(url)
                rates_due = time.monotonic() + 2.0
            self._forget_long_gone()
            self._stop.wait(min(pause_s, MAX_SAMPLE_PAUSE_S))

    def sample_once(self) -> None:
        """One pass of the sampler (tests and benchmarks call it instead of waiting)."""
        url = self.redis_url()
        self._inspect_new_workers(url)
        self._sample_broker(url)
        self._sample_database()
        self._sample_rates(url)

    def _inspect_new_workers(self, url: str) -> None:
        with self._lock:
            wanted = sorted(self._wanted_inspections)
        if not wanted or not url:
            return
        try:
            inspector = self._celery(url).control.inspect(
                destination=wanted, timeout=self._inspect_timeout_s
            )
            stats = inspector.stats() or {}
            queues = inspector.active_queues() or {}
        except Exception as error:
            log.info("inspect %s: %s", wanted, _one_line(error))
            return
        with self._lock:
            for hostname in wanted:
                worker = self._state.workers.get(hostname)
                if worker is None or hostname not in stats:
                    continue  # asked again next pass
                worker_stats = stats[hostname]
                worker.pid = int(worker_stats.get("pid") or 0) or worker.pid
                pool = worker_stats.get("pool") or {}
                concurrency = pool.get("max-concurrency")
                worker.concurrency = int(concurrency) if concurrency else worker.concurrency
                worker.queues = tuple(
                    str(queue.get("name")) for queue in queues.get(hostname, []) or []
                )
                self._wanted_inspections.discard(hostname)

    def _sample_broker(self, url: str) -> None:
        if not url:
            return
        try:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            try:
                depth = queue_depth(client, self._settings.queue_name)
            finally:
                client.close()
        except (redis.RedisError, OSError, ValueError) as error:
            with self._lock:
                self._state.queued_batches = None
                self._state.broker_error = f"Redis at {redacted_url(url)}: {_one_line(error)}"
            return
        with self._lock:
            self._state.queued_batches = depth

    def _sample_database(self) -> None:
        now = utc_now()
        recent = now - timedelta(seconds=2 * RATE_WINDOW_S)
        # Campaigns that finished a moment ago stay in, so their last sends still count.
        watched = select(Campaign.id, Campaign.state).where(
            or_(Campaign.state.in_(WATCHED_CAMPAIGN_STATES), Campaign.finished_at >= recent)
        )
        try:
            with self._database.session() as session:
                watched_states: dict[int, str] = dict(session.execute(watched).all())
                counts = job_state_counts_by_campaign(session, list(watched_states))
                totals = job_state_totals(session)
                waiting = sum(
                    counts.get(campaign_id, {}).get(str(state), 0)
                    for campaign_id, campaign_state in watched_states.items()
                    if campaign_state == CampaignState.RUNNING
                    for state in CLAIMABLE_JOB_STATES
                )
                later = self._jobs_due_later(session, now) if waiting else 0
        except Exception as error:
            log.warning("sampling the job table: %s", _one_line(error))
            return
        pending_states = {str(state) for state in PENDING_JOB_STATES}
        finished: dict[int, int] = {}
        sent: dict[int, int] = {}
        for campaign_id, by_state in counts.items():
            finished[campaign_id] = sum(
                jobs for state, jobs in by_state.items() if state not in pending_states
            )
            sent[campaign_id] = by_state.get(JobState.SENT, 0)
        at = time.time()
        with self._lock:
            state = self._state
            previous = state.samples[-1] if state.samples else None
            if previous is None or (finished, sent) != (previous.finished, previous.sent):
                state.last_progress_at = at
            state.samples.append(_Sample(at, finished, sent))
            state.jobs_by_state = totals
            # Two reads (on PostgreSQL, two moments): a job that moved in between could make
            # the difference negative for a moment.
            state.due_jobs = max(0, waiting - later)
            state.sampled_at = datetime.now(UTC)

    def _jobs_due_later(self, session: Session, now: datetime) -> int:
        """Waiting jobs of running campaigns not due yet (deferred, or planned for later).

        Counting these instead of the due ones costs nothing for a campaign sent at once, however
        big; a campaign spread over hours has many, so they are recounted at most every
        ``LATER_RECOUNT_FACTOR`` times as long as counting took.
        """
        if time.monotonic() < self._later_recount_at:
            return self._later
        started = time.monotonic()
        self._later = (
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(job_is_claimable(), job_attempt_is_later(now), job_campaign_is_running())
                # Without statistics SQLite would walk every waiting job by campaign instead.
                .with_hint(Job, "INDEXED BY ix_jobs_state_next_attempt", "sqlite")
            )
            or 0
        )
        elapsed_s = time.monotonic() - started
        self._later_recount_at = started + LATER_RECOUNT_FACTOR * elapsed_s
        return self._later

    def _sample_rates(self, url: str) -> None:

        try:
            config = load_relay_config(self._settings)
        except EdmError as error:
            with self._lock:
                self._state.rates_error = str(error)
            return
        relays = [
            RelayLimitRow(
                name=relay.name,
                url=relay.relay.display(),
                per_second=relay.per_second or None,
                per_hour=relay.per_hour or None,
                per_day=relay.per_day or None,
                max_connections=relay.max_connections or None,
                connections_in_use=0,
                sent_last_hour=None,
                sent_last_day=None,
                closed_for_s=0.0,
                closed_reason=None,
            )
            for relay in config.relays
        ]
        domains = [
            DomainLimitRow(domain, rate, rate, 1.0)
            for domain, rate in sorted(config.domain_limits.items())
        ]
        error_text = None
        if url:
            try:
                rates, measured = asyncio.run(_read_rates(url, config))
                relays = [
                    RelayLimitRow(
                        name=relay.name,
                        url=relay.url,
                        per_second=relay.per_second,
                        per_hour=relay.per_hour,
                        per_day=relay.per_day,
                        max_connections=relay.max_connections,
                        connections_in_use=relay.connections_in_use,
                        sent_last_hour=relay.sent_last_hour,
                        sent_last_day=relay.sent_last_day,
                        closed_for_s=relay.closed_for_s,
                        closed_reason=relay.closed_reason,
                        sent_per_second=measured.relays.get(relay.name, 0.0),
                    )
                    for relay in rates.relays
                ]
                domains = _domain_rows(config, rates.domains, measured.domains)
            except Exception as error:
                error_text = f"rates in Redis: {_one_line(error)}"
        with self._lock:
            self._state.relays = relays
            self._state.domains = domains
            self._state.send_rate_limit = config.send_rate or None
            self._state.rates_error = error_text

    def _set_broker(self, broker: str, error: str | None) -> None:
        with self._lock:
            self._state.broker = broker
            self._state.broker_error = error

    def _forget_long_gone(self) -> None:
        now = time.time()
        with self._lock:
            for hostname, worker in list(self._state.workers.items()):
                last = worker.said_goodbye_at or worker.last_heartbeat
                if last and now - last > GONE_WORKERS_KEPT_S:
                    del self._state.workers[hostname]


async def _read_rates(url: str, config: Any) -> tuple[Any, Any]:
    """The limits in force and the send rates measured over the last minute."""

    client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        rates = await effective_rates(client, config)
        measured = await measured_send_rates(
            client,
            config.namespace,
            domains=[domain.domain for domain in rates.domains],
            busiest=BUSIEST_DOMAINS,
        )
        return rates, measured
    finally:
        await client.aclose()


def _domain_rows(
    config: Any, limited: list[Any], sent_per_second: dict[str, float]
) -> list[DomainLimitRow]:
    """Domains with a limit or a slow-down, and the busiest ones, the busiest first."""
    rows = {
        domain.domain: DomainLimitRow(
            domain=domain.domain,
            configured_per_second=domain.configured_per_second,
            effective_per_second=domain.effective_per_second,
            slowdown_factor=domain.factor,
            sent_per_second=sent_per_second.get(domain.domain, 0.0),
        )
        for domain in limited
    }
    for domain, rate in sent_per_second.items():
        if domain not in rows:
            # Not slowed down (those are all in ``limited``): at most its configured rate.
            configured = config.domain_rate(domain) or None
            rows[domain] = DomainLimitRow(domain, configured, configured, 1.0, rate)
    return sorted(rows.values(), key=lambda row: (-(row.sent_per_second or 0.0), row.domain))


def _rates(samples: list[_Sample]) -> tuple[float | None, float | None]:
    """Finished and sent messages per second over the last ``RATE_WINDOW_S``."""
    if len(samples) < 2:
        return None, None
    last = samples[-1]
    first = next((sample for sample in samples if last.at - sample.at <= RATE_WINDOW_S), samples[0])
    elapsed = last.at - first.at
    if elapsed <= 0:
        return None, None

    def growth(before: dict[int, int], after: dict[int, int]) -> int:
        # Per campaign, so one that drops out of the sample takes nothing away.
        return sum(max(0, after[key] - before.get(key, 0)) for key in after)

    return (
        growth(first.finished, last.finished) / elapsed,
        growth(first.sent, last.sent) / elapsed,
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
