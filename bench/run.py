"""``python -m bench``: the project against a naive baseline and the machine's ceiling.

Every send measurement goes to one SMTP sink started for the run, and is timed until that sink
has received every message. Results are printed as a table and written as JSON to
``bench/out/results-<timestamp>.json``; worker logs and profiles go to
``bench/out/run-<timestamp>/``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.ceiling import run_ceiling
from bench.message_size import naive_message_bytes, project_message_bytes
from bench.naive_run import naive_recipients, run_naive
from bench.processes import PROJECT_ROOT
from bench.project_run import SENDER, WORKER_MODES, run_project
from bench.report import print_report
from bench.services import bench_redis, scratch_dir
from bench.sinks import SmtpSink, choose_sink_kind
from campaigns.core.errors import EdmError
from campaigns.lists.sample_lists import write_sample_list

OUT_DIR = Path(__file__).resolve().parent / "out"
DEFAULT_RECIPIENTS = 20_000
QUICK_RECIPIENTS = 2_000
MILLION_ROWS = 1_000_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipients",
        type=int,
        default=None,
        help=f"rows in the generated list (default {DEFAULT_RECIPIENTS:,}; ~5%% are invalid or "
        "duplicates, so slightly fewer messages are sent)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_RECIPIENTS:,} recipients, one worker layout",
    )
    parser.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="run the project on PostgreSQL: each measurement gets a scratch database created "
        "beside this one (e.g. postgresql://postgres@127.0.0.1/test); default embedded SQLite",
    )
    parser.add_argument(
        "--sink",
        choices=("auto", "postfix", "counting"),
        default="auto",
        help="Postfix smtp-sink, the bench's counting sink, or auto (smtp-sink when installed)",
    )
    parser.add_argument(
        "--workers",
        choices=("both", *WORKER_MODES),
        default="both",
        help="1x2: one `edm worker --concurrency 2`; 2x1: two `edm worker --concurrency 1`",
    )
    parser.add_argument("--skip-project", action="store_true")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument(
        "--million",
        action="store_true",
        help="also import a 1,000,000-row CSV and create and dispatch its jobs (minutes)",
    )
    parser.add_argument("--million-rows", type=int, default=MILLION_ROWS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the project's worker processes with py-spy while they send (slows them)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="EDM_NAME=VALUE",
        help="a project setting for the project runs, e.g. --env EDM_SMTP_CONNECTIONS=8",
    )
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per measurement")
    return parser


PROJECT_PACKAGES = ("campaigns", "workers", "dashboard", "public_endpoints", "edm")


def byte_compile_project() -> None:
    """Write the project's bytecode caches first, as an installed copy has them: with
    PYTHONDONTWRITEBYTECODE set, every timed process (``edm campaigns schedule``, the
    dispatcher) would otherwise compile each project module it imports from source."""
    for package in PROJECT_PACKAGES:
        if (PROJECT_ROOT / package).is_dir():
            compileall.compile_dir(PROJECT_ROOT / package, quiet=1)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the sink, workers and scratch databases are cleaned up.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    recipients = args.recipients or (QUICK_RECIPIENTS if args.quick else DEFAULT_RECIPIENTS)
    if recipients < 1:
        sys.exit("python -m bench: --recipients must be at least 1")
    overrides = parse_overrides(args.env)
    modes = ["1x2"] if args.quick and args.workers == "both" else _modes(args.workers)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT_DIR / f"run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    byte_compile_project()
    results: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        "machine": machine_facts(),
        "recipients_rows": recipients,
        "database": "postgresql" if args.database_url else "sqlite",
        "settings_overrides": overrides,
        "logs": str(run_dir),
    }

    try:
        _run_measurements(args, results, recipients, modes, overrides, run_dir)
    except (RuntimeError, OSError, ValueError, EdmError, psycopg.Error) as error:
        results["error"] = " ".join(str(error).split())
        print(f"python -m bench: error: {results['error']} (logs in {run_dir})", file=sys.stderr)
        sys.exit(1)
    finally:
        results["finished_at"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_path = OUT_DIR / f"results-{stamp}.json"
        out_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_report(results)
    print(f"\nresults: {out_path}\nlogs:    {run_dir}")


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _run_measurements(
    args: argparse.Namespace,
    results: dict[str, Any],
    recipients: int,
    modes: list[str],
    overrides: dict[str, str],
    run_dir: Path,
) -> None:
    """Every measurement asked for, each adding its part to ``results``."""
    with scratch_dir("edm-bench-") as work_dir:
        csv_path = work_dir / "recipients.csv"
        facts = write_sample_list(csv_path, recipients)
        expected = len(facts.valid_unique_emails)
        results["messages"] = expected
        sample = naive_recipients(csv_path, facts.valid_unique_emails)
        first_email, first_fields = sample[0]
        results["message_bytes"] = {
            "project": project_message_bytes(first_email, first_fields, sender=SENDER),
            "naive": naive_message_bytes(first_email, first_fields),
        }
        _progress(f"list: {recipients:,} rows, {expected:,} valid unique recipients")

        with bench_redis(work_dir) as redis, SmtpSink(choose_sink_kind(args.sink)) as sink:
            results["sink"] = sink.description
            results["redis"] = redis.description
            _progress(f"sink: {sink.description}; redis: {redis.description}")

            if not args.skip_ceiling:
                _progress("ceiling: smtp-source")
                ceiling = run_ceiling(
                    sink,
                    messages=expected,
                    payload_bytes=results["message_bytes"]["project"],
                    timeout_s=args.timeout_s,
                )
                results["ceiling"] = ceiling.as_dict() if ceiling else None
                if ceiling is None:
                    results["ceiling_note"] = "smtp-source not installed (package postfix)"

            if not args.skip_project:
                results["project"] = []
                for mode in modes:
                    _progress(f"project: {WORKER_MODES[mode][0]}")
                    project = run_project(
                        csv_path=csv_path,
                        expected=expected,
                        sink=sink,
                        redis=redis,
                        database_url=args.database_url,
                        mode=mode,
                        log_dir=run_dir,
                        overrides=overrides,
                        timeout_s=args.timeout_s,
                        profile_dir=run_dir if args.profile else None,
                    )
                    results["project"].append(project.as_dict())
                    _progress(f"  {project.messages_per_s:,.0f} msg/s")

            if not args.skip_naive:
                _progress("naive baseline: Celery + smtplib")
                naive = run_naive(
                    recipients=sample,
                    sink=sink,
                    redis=redis,
                    log_dir=run_dir,
                    environment=_plain_environment(),
                    timeout_s=args.timeout_s,
                )
                results["naive"] = naive.as_dict()
                _progress(f"  {naive.messages_per_s:,.0f} msg/s")

            if args.million:
                from bench.million import run_million

                _progress(f"million: {args.million_rows:,} rows (import, schedule, dispatch)")
                results["million"] = run_million(
                    rows=args.million_rows,
                    database_url=args.database_url,
                    redis_url=redis.url,
                    log_dir=run_dir,
                    overrides=overrides,
                    timeout_s=args.timeout_s,
                )


def _modes(requested: str) -> list[str]:
    return list(WORKER_MODES) if requested == "both" else [requested]


def parse_overrides(pairs: list[str], *, prog: str = "python -m bench") -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.startswith("EDM_"):
            sys.exit(f"{prog}: --env {pair!r}: expected EDM_NAME=VALUE")
        overrides[name] = value
    return overrides


def _plain_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}


def machine_facts() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit.stdout.strip() + (" (with local changes)" if dirty.stdout.strip() else ""),
    }
