"""The long-running commands that serve HTTP or the demo: ``edm track``, ``edm serve``, ``edm demo``
(``edm worker`` has a module of its own)."""

from __future__ import annotations

import argparse

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from dashboard.server import serve_dashboard
from edm.command_helpers import check_port
from edm.demo import run_demo
from public_endpoints.tracking_app import serve_tracking


def track(args: argparse.Namespace, settings: Settings) -> None:
    if not 0 < args.port < 65536:
        raise InputError(f"--port: {args.port} is not a TCP port")
    if args.workers < 1:
        raise InputError(f"--workers: {args.workers} is not a number of processes (1 or more)")
    serve_tracking(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        queue_events=not args.sync_events,
    )


def serve(args: argparse.Namespace, settings: Settings) -> None:
    check_port(args.port)
    serve_dashboard(settings, host=args.host, port=args.port)


def demo(args: argparse.Namespace, settings: Settings) -> None:
    if args.serve and not 0 < args.port < 65536:
        raise InputError(f"--port: {args.port} is not a TCP port")
    run_demo(settings, serve_port=args.port if args.serve else None)
