"""``edm worker``. Its own module: Celery forks the pool processes from this process, so what it
imports (the dashboard, pandas) every pool process would carry, and their garbage collections
would walk it after each batch."""

from __future__ import annotations

import argparse

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from edm.command_helpers import database
from workers.worker_command import run_worker


def worker(args: argparse.Namespace, settings: Settings) -> None:
    if args.concurrency < 1:
        raise InputError("--concurrency: must be at least 1")
    database(settings)
    run_worker(settings, concurrency=args.concurrency, dispatcher=not args.no_dispatcher)
