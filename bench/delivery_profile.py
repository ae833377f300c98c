"""The delivery function alone: ``workers.delivery.batch.deliver_batch`` driven in this
process, with no Celery, into the same kind of sink, optionally under pyinstrument::

    .venv/bin/python -m bench.delivery_profile --recipients 10000 --pyinstrument

It prints messages per second and CPU milliseconds per message of one process (its event loop
and helper threads), which is what one Celery pool process can do at most, and with
``--pyinstrument`` where that process's time goes. The first batch is sent before the clock
starts, so connections are open and the campaign is prepared.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.services import bench_redis, edm_environment, scratch_dir
from bench.sinks import SmtpSink, choose_sink_kind
from campaigns.lists.sample_lists import write_sample_list

SENDER = "Bench News <news@bench.example>"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_profile")
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--sink", choices=("auto", "postfix", "counting"), default="auto")
    parser.add_argument("--no-tracking", action="store_true", help="campaign without tracking")
    parser.add_argument("--pyinstrument", action="store_true", help="print where the time goes")
    args = parser.parse_args(argv)
    with (
        scratch_dir("edm-bench-delivery-") as data_dir,
        bench_redis(data_dir) as redis,
        SmtpSink(choose_sink_kind(args.sink)) as sink,
    ):
        # delivery_context() reads its settings from the environment, as in a worker.
        os.environ.update(
            edm_environment(
                data_dir=data_dir,
                database_url="",
                redis_url=redis.url,
                smtp_url=sink.url,
                queue_name=f"edm-bench-{uuid.uuid4().hex[:8]}",
                overrides={},
            )
        )
        batches = _scheduled_batches(data_dir, args.recipients, tracking=not args.no_tracking)

        from workers.delivery.batch import deliver_batch
        from workers.process_state import delivery_context, run_on_process_loop

        context = delivery_context()
        run_on_process_loop(deliver_batch(context, batches[0]))
        timed = batches[1:]
        messages = sum(len(batch) for batch in timed)
        profiler = _start_profiler() if args.pyinstrument else None
        base = sink.count
        cpu_started = time.process_time()
        started = time.monotonic()
        for batch in timed:
            run_on_process_loop(deliver_batch(context, batch))
        elapsed_s = time.monotonic() - started
        cpu_s = time.process_time() - cpu_started
        if profiler is not None:
            profiler.stop()
        sink.wait_for(base + messages, timeout_s=30)
        print(
            f"{messages:,} messages in {elapsed_s:.2f} s: {messages / elapsed_s:,.0f} msg/s, "
            f"{cpu_s * 1000 / messages:.3f} CPU ms per message (this process), "
            f"sink got {sink.count - base:,} ({sink.description})"
        )
        if profiler is not None:
            print(profiler.output_text(unicode=False, color=False))


def _scheduled_batches(data_dir: Path, rows: int, *, tracking: bool) -> list[list[int]]:
    """Import a sample list, schedule a campaign for it, and cut its jobs into batches as the
    dispatcher does (the dispatcher marks them published; nothing is sent to a broker)."""
    from campaigns.core.models import utc_now
    from campaigns.core.settings import Settings
    from campaigns.core.storage import open_database
    from campaigns.jobs.dispatch import Dispatcher, DispatchLimits
    from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
    from campaigns.lists.importer import import_recipients

    settings = Settings.from_env()
    database = open_database(settings.resolved_database_url)
    csv_path = data_dir / "recipients.csv"
    write_sample_list(csv_path, rows)
    import_recipients(database, csv_path, "bench")
    campaign = create_campaign(
        database,
        name="Bench delivery",
        list_name="bench",
        template="newsletter",
        from_address=SENDER,
        templates_dir=settings.resolved_templates_dir,
        tracking=tracking,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    batches: list[list[int]] = []
    limits = DispatchLimits(batch_size=settings.batch_size, max_queued_batches=rows)
    dispatcher = Dispatcher(
        database,
        publish=lambda ids: batches.append(list(ids)),
        queue_depth=lambda: 0,
        limits=limits,
    )
    dispatcher.run_once()
    database.dispose()
    return batches


def _start_profiler() -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("--pyinstrument needs it: .venv/bin/pip install pyinstrument") from None
    profiler = Profiler()
    profiler.start()
    return profiler


if __name__ == "__main__":
    main()
