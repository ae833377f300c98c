"""Prometheus metrics at ``/metrics`` (sign in, or scrape with an API token as bearer token).

Everything is read from the worker monitor's snapshot, so a scrape costs no query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from campaigns.core.models import JobState
from dashboard.api_workers import snapshot_of
from dashboard.auth import RequireViewer
from dashboard.dependencies import MonitorDep
from dashboard.worker_monitor import WorkersSnapshot

router = APIRouter(include_in_schema=False, dependencies=[RequireViewer])


class SnapshotCollector(Collector):
    def __init__(self, snapshot: WorkersSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        jobs = GaugeMetricFamily(
            "edm_jobs",
            "Recipients' messages by outcome (job state), over every campaign",
            labels=["state"],
        )
        for state in JobState:
            jobs.add_metric([str(state)], snapshot.jobs_by_state.get(str(state), 0))
        yield jobs
        yield _gauge(
            "edm_queue_batches", "Batches of job ids waiting in the broker", snapshot.queued_batches
        )
        yield _gauge(
            "edm_due_jobs", "Jobs of running campaigns due now, not yet finished", snapshot.due_jobs
        )
        yield _gauge("edm_workers_online", "Workers sending heartbeats", snapshot.online)
        yield _gauge(
            "edm_workers_gone",
            "Workers seen within the hour that stopped",
            len(snapshot.workers) - snapshot.online,
        )
        yield _gauge(
            "edm_send_rate_messages_per_second",
            "Messages finished (sent or refused) per second over the last minute",
            snapshot.send_rate_per_s,
        )
        yield _gauge(
            "edm_sent_rate_messages_per_second",
            "Messages accepted by the relays per second over the last minute",
            snapshot.sent_rate_per_s,
        )
        yield _gauge(
            "edm_stuck", "1 while work waits and nothing is being sent", 1 if snapshot.stuck else 0
        )
        active = GaugeMetricFamily(
            "edm_worker_active_tasks", "Batches a worker is running", labels=["worker"]
        )
        processed = CounterMetricFamily(
            "edm_worker_processed", "Batches a worker has run", labels=["worker"]
        )
        for worker in snapshot.workers:
            if worker.online:
                active.add_metric([worker.hostname], worker.active)
                processed.add_metric([worker.hostname], worker.processed)
        yield active
        yield processed
        yield _labelled_gauge(
            "edm_relay_connections_in_use",
            "Messages in flight through a relay",
            "relay",
            ((relay.name, relay.connections_in_use) for relay in snapshot.relays),
        )
        yield _labelled_gauge(
            "edm_domain_rate_limit_per_second",
            "Messages per second a recipient domain may receive now (after any slow-down)",
            "domain",
            ((domain.domain, domain.effective_per_second) for domain in snapshot.domains),
        )
        yield _labelled_gauge(
            "edm_relay_send_rate_messages_per_second",
            "Messages a relay gave its verdict on per second over the last minute",
            "relay",
            ((relay.name, relay.sent_per_second) for relay in snapshot.relays),
        )
        yield _labelled_gauge(
            "edm_domain_send_rate_messages_per_second",
            "Messages sent to a recipient domain per second over the last minute (domains with "
            "a limit or a slow-down, and the busiest)",
            "domain",
            ((domain.domain, domain.sent_per_second) for domain in snapshot.domains),
        )


def _labelled_gauge(
    name: str, documentation: str, label: str, values: Iterable[tuple[str, float | None]]
) -> GaugeMetricFamily:
    """One sample per label value; values that are None (not known) are left out."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for label_value, value in values:
        if value is not None:
            family.add_metric([label_value], value)
    return family


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family


@router.get("/metrics")
def metrics(monitor: MonitorDep) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot_of(monitor)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
