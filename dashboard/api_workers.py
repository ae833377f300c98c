"""JSON API for the workers, the queue and the rates in force."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from campaigns.core.errors import ServiceUnavailable
from dashboard.auth import RequireViewer
from dashboard.dependencies import MonitorDep
from dashboard.worker_monitor import DomainLimitRow, RelayLimitRow, WorkerRow, WorkersSnapshot

router = APIRouter(prefix="/api", tags=["workers"], dependencies=[RequireViewer])


class WorkersOut(BaseModel):
    broker: str
    broker_error: str | None
    online: int
    transactional_processes: int
    """Processes of the transactional lane online, across every worker host."""
    workers: list[WorkerRow]
    queued_batches: int | None
    due_jobs: int | None
    send_rate_per_s: float | None
    """Messages finished per second over the last minute."""
    sent_rate_per_s: float | None
    """Of those, messages the relays accepted."""
    send_rate_limit: float | None
    """EDM_SEND_RATE: all relays together; null when there is none."""
    relays: list[RelayLimitRow]
    domains: list[DomainLimitRow]
    rates_error: str | None
    stuck: str | None
    """Set while work waits and nothing is sent: the reason."""
    sampled_at: datetime | None


def snapshot_of(monitor: object) -> WorkersSnapshot:
    if monitor is None:
        raise ServiceUnavailable("the worker monitor is not running in this server")
    return monitor.snapshot()  # type: ignore[attr-defined]


def workers_out(snapshot: WorkersSnapshot) -> WorkersOut:
    return WorkersOut(
        broker=snapshot.broker,
        broker_error=snapshot.broker_error,
        online=snapshot.online,
        transactional_processes=snapshot.transactional_processes,
        workers=snapshot.workers,
        queued_batches=snapshot.queued_batches,
        due_jobs=snapshot.due_jobs,
        send_rate_per_s=snapshot.send_rate_per_s,
        sent_rate_per_s=snapshot.sent_rate_per_s,
        send_rate_limit=snapshot.send_rate_limit,
        relays=snapshot.relays,
        domains=snapshot.domains,
        rates_error=snapshot.rates_error,
        stuck=snapshot.stuck,
        sampled_at=snapshot.sampled_at,
    )


@router.get("/workers", summary="Workers online and gone, queue depth, send rate, rates, alarm")
def get_workers(monitor: MonitorDep) -> WorkersOut:
    return workers_out(snapshot_of(monitor))
