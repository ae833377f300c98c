"""``edm demo``: the whole pipeline on this machine, delivering into a capture folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.models import PENDING_JOB_STATES, utc_now
from campaigns.core.private_files import make_private_directory
from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database
from campaigns.lifecycle.campaign_service import campaign_status, create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from campaigns.lists.sample_lists import DEMO_LIST
from edm.demo_server import serve_demo_dashboard
from workers.receivers.mail_capture import MailCapture

DEMO_TEMPLATE = "newsletter"
DEMO_SENDER = "Northwind News <news@northwind.example>"
DEMO_TIMEOUT_S = 300.0


def run_demo(settings: Settings, *, serve_port: int | None = None) -> None:
    """``serve_port``: after the campaign is delivered, keep the worker and the capture server
    running and serve the dashboard on this port until Ctrl-C."""
    console = Console()
    demo_dir = (settings.data_dir / "demo").resolve()
    # A fresh database and capture folder each run, so what is in the folder is this run's.
    shutil.rmtree(demo_dir, ignore_errors=True)
    make_private_directory(demo_dir)
    settings = replace(
        settings, data_dir=demo_dir, database_url=f"sqlite:///{demo_dir / 'demo.sqlite3'}"
    )
    database = open_database(settings.resolved_database_url)

    report = import_recipients(database, DEMO_LIST, "demo", secret=settings.secret)
    console.print(
        f"Imported [bold]{report.imported}[/] recipients from {DEMO_LIST.name}: "
        f"{report.rejected} rejected, {report.duplicates} duplicates merged"
    )
    for error in report.errors[:5]:
        console.print(f"  [dim]{DEMO_LIST.name}:{error.line}: {error.reason}[/]")
    campaign = create_campaign(
        database,
        name="Demo newsletter",
        list_name="demo",
        template=DEMO_TEMPLATE,
        from_address=DEMO_SENDER,
        templates_dir=settings.resolved_templates_dir,
    )

    mail_folder = demo_dir / "mail"
    with MailCapture(mail_folder) as capture:
        worker_log = demo_dir / "worker.log"
        environment = {
            **os.environ,
            "EDM_DATA_DIR": str(demo_dir),
            "EDM_DATABASE_URL": settings.resolved_database_url,
            "EDM_SMTP_URL": capture.url,
            "EDM_DISPATCH_INTERVAL_S": "0.2",
            # Small batches so both worker processes share even a short demo list.
            "EDM_BATCH_SIZE": "25",
        }
        with worker_log.open("wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "edm", "worker", "--concurrency", "2"],
                env=environment,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            started = time.monotonic()
            total = schedule_campaign(database, campaign.id, send_at=utc_now()).jobs
            _watch(console, database, campaign.id, total, worker, worker_log)
            elapsed_s = time.monotonic() - started
            if serve_port is not None:
                serve_demo_dashboard(console, settings, database, port=serve_port)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        status = campaign_status(database, campaign.id)
        captured = capture.count

    sent = status.counts.get("sent", 0)
    failed = status.total - sent
    console.print()
    console.print(f"[bold green]Campaign {campaign.id} {status.state}[/] in {elapsed_s:.1f} s")
    console.print(
        f"  imported {report.imported}, rejected {report.rejected}, "
        f"sent {sent}, failed {failed}, {sent / max(elapsed_s, 1e-9):.0f} messages/s"
    )
    console.print(f"  captured {captured} messages in {mail_folder}")
    console.print(f"  worker log: {worker_log}")


def _watch(
    console: Console,
    database: Database,
    campaign_id: int,
    total: int,
    worker: subprocess.Popen[bytes],
    worker_log: Path,
) -> None:
    deadline = time.monotonic() + DEMO_TIMEOUT_S
    columns = (
        TextColumn("Sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("send", total=total)
        while True:
            status = campaign_status(database, campaign_id)
            pending = sum(status.counts.get(state, 0) for state in PENDING_JOB_STATES)
            progress.update(bar, completed=total - pending)
            if status.state == "completed":
                return
            if worker.poll() is not None:
                tail = worker_log.read_text(errors="replace").strip().splitlines()[-1:]
                raise ServiceUnavailable(f"the worker stopped: {' '.join(tail)} (see {worker_log})")
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"demo did not finish in {DEMO_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
