"""Celery tasks: thin wrappers that run the async delivery code on the process's own loop."""

from __future__ import annotations

from workers.celery_app import app
from workers.delivery.batch import deliver_batch as deliver
from workers.process_state import delivery_context, run_on_process_loop

DELIVER_BATCH = "edm.deliver_batch"


@app.task(name=DELIVER_BATCH)
def deliver_batch(job_ids: list[int]) -> None:

    context = delivery_context()
    run_on_process_loop(deliver(context, job_ids))
