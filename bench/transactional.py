"""``python -m bench.transactional``: transactional mail beside a campaign, and the API alone.

For each database asked for (a SQLite file, or a scratch PostgreSQL database beside
``--database-url``), with real processes (one ``edm worker --concurrency 2`` and its
transactional lane, ``edm serve``, ``edm submit serve`` with ``--submission``, Redis, the
counting SMTP sink):

1. a campaign of M recipients alone, timed to its last message at the sink; then the same
   campaign again while N transactional messages are sent at a steady pace through the API
   (and, with ``--submission``, once more through SMTP submission), each one's latency taken
   from the project's acceptance (202, or 250 to DATA) to the sink's 250 for it. The sink tells
   transactional messages apart by their recipients' domain.
2. the API alone: K messages from C concurrent clients, accepted per second and delivered per
   second (from the first request to the last arrival at the sink).

Results are printed as tables and written as JSON (``--json PATH``, by default
``bench/out/tx-results-<timestamp>.json``); the processes' logs go to ``bench/out/tx-run-*/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.latency import summarise
from bench.profiling import PySpyRecorder
from bench.project_run import (
    ProcessGroups,
    Timing,
    Workers,
    create_campaign,
    final_status,
    import_list,
    send_campaign,
    start_workers,
)
from bench.run import OUT_DIR, byte_compile_project, machine_facts, parse_overrides
from bench.services import (
    RedisService,
    bench_redis,
    delete_queue_keys,
    edm_environment,
    fresh_database,
    scratch_dir,
)
from bench.sinks import SmtpSink
from bench.tx_clients import (
    FROM_ADDRESS,
    MARK_DOMAIN,
    ApiSender,
    SubmissionSender,
    recipients,
    send_concurrently,
    send_paced,
)
from bench.tx_report import print_tx_report
from bench.tx_servers import api_token, start_api, start_submission, submission_password
from campaigns.core.errors import EdmError
from campaigns.core.settings import Settings
from campaigns.lists.sample_lists import write_sample_list

PROG = "python -m bench.transactional"


@dataclass(frozen=True)
class Sizes:
    campaign_rows: int
    tx_messages: int
    tx_rate_per_s: float
    api_messages: int
    api_clients: int


DEFAULT_SIZES = Sizes(
    campaign_rows=20_000, tx_messages=1_000, tx_rate_per_s=20, api_messages=5_000, api_clients=32
)
QUICK_SIZES = Sizes(
    campaign_rows=1_000, tx_messages=40, tx_rate_per_s=20, api_messages=200, api_clients=32
)
WARM_UP_MESSAGES = 5
ARRIVAL_TIMEOUT_S = 600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        metavar="URL",
        help="PostgreSQL server for --database postgresql: a scratch database is created beside "
        "this one and dropped afterwards (default %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes for a smoke run ({QUICK_SIZES.campaign_rows:,} campaign rows, "
        f"{QUICK_SIZES.tx_messages} messages, {QUICK_SIZES.api_messages} for the API alone)",
    )
    parser.add_argument(
        "--campaign-recipients",
        type=int,
        metavar="M",
        help=f"rows of the campaign's list (default {DEFAULT_SIZES.campaign_rows:,}; ~5%% are "
        "invalid or duplicates)",
    )
    parser.add_argument(
        "--tx-messages",
        type=int,
        metavar="N",
        help=f"transactional messages beside the campaign (default {DEFAULT_SIZES.tx_messages:,})",
    )
    parser.add_argument(
        "--tx-rate",
        type=float,
        metavar="PER_S",
        help=f"their steady pace (default {DEFAULT_SIZES.tx_rate_per_s:g}/s)",
    )
    parser.add_argument(
        "--api-messages",
        type=int,
        metavar="K",
        help=f"messages for the API alone (default {DEFAULT_SIZES.api_messages:,})",
    )
    parser.add_argument(
        "--clients",
        type=int,
        metavar="C",
        help=f"concurrent API clients (default {DEFAULT_SIZES.api_clients})",
    )
    parser.add_argument(
        "--submission",
        action="store_true",
        help="also run the campaign once more with the messages sent through SMTP submission",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="EDM_NAME=VALUE",
        help="a project setting for every process, e.g. --env EDM_TX_PROCESSES=2",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample edm serve and the workers with py-spy (summaries beside the logs; slows "
        "them down)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="where to write the results")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per measurement")
    return parser


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK_SIZES if args.quick else DEFAULT_SIZES
    sizes = Sizes(
        campaign_rows=args.campaign_recipients or base.campaign_rows,
        tx_messages=args.tx_messages or base.tx_messages,
        tx_rate_per_s=args.tx_rate or base.tx_rate_per_s,
        api_messages=args.api_messages or base.api_messages,
        api_clients=args.clients or base.api_clients,
    )
    for name, value in vars(sizes).items():
        if value <= 0:
            sys.exit(f"{PROG}: --{name.replace('_', '-')}: must be above 0, got {value}")
    return sizes


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    sizes = sizes_from(args)
    overrides = parse_overrides(args.env, prog=PROG)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT_DIR / f"tx-run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out_path = args.json or OUT_DIR / f"tx-results-{stamp}.json"
    byte_compile_project()
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", PROG.split()[-1], *sys.argv[1:]]),
        "machine": machine_facts(),
        "sizes": vars(sizes),
        "settings_overrides": overrides,
        "logs": str(run_dir),
        "runs": [],
    }
    try:
        _measure(args, sizes, databases, overrides, run_dir, results)
    except (RuntimeError, OSError, ValueError, EdmError, psycopg.Error) as error:
        results["error"] = " ".join(str(error).split())
        print(f"{PROG}: error: {results['error']} (logs in {run_dir})", file=sys.stderr)
        sys.exit(1)
    finally:
        results["finished_at"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_tx_report(results)
    print(f"\nresults: {out_path}\nlogs:    {run_dir}")


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _measure(
    args: argparse.Namespace,
    sizes: Sizes,
    databases: list[str],
    overrides: dict[str, str],
    run_dir: Path,
    results: dict[str, Any],
) -> None:
    with scratch_dir("edm-bench-tx-") as work_dir:
        csv_path = work_dir / "recipients.csv"
        expected = len(write_sample_list(csv_path, sizes.campaign_rows).valid_unique_emails)
        results["campaign_messages"] = expected
        with bench_redis(work_dir) as redis, SmtpSink("counting", mark_domain=MARK_DOMAIN) as sink:
            results["sink"] = sink.description
            results["redis"] = redis.description
            _progress(f"sink: {sink.description}; redis: {redis.description}")
            for database in databases:
                run = _DatabaseRun(
                    database=database,
                    database_url=args.database_url if database == "postgresql" else "",
                    sizes=sizes,
                    expected=expected,
                    sink=sink,
                    redis=redis,
                    log_dir=run_dir,
                    timeout_s=args.timeout_s,
                    profile=args.profile,
                )
                results["runs"].append(run.measure(csv_path, overrides, submission=args.submission))


@dataclass
class _DatabaseRun:
    database: str
    database_url: str
    sizes: Sizes
    expected: int
    sink: SmtpSink
    redis: RedisService
    log_dir: Path
    timeout_s: float
    profile: bool

    def measure(
        self, csv_path: Path, overrides: dict[str, str], *, submission: bool
    ) -> dict[str, Any]:
        paths = ["api", "submission"] if submission else ["api"]
        queue_name = f"edm-bench-tx-{uuid.uuid4().hex[:8]}"
        result: dict[str, Any] = {"database": self.database}
        with ExitStack() as stack:
            data_dir = stack.enter_context(scratch_dir("edm-bench-tx-data-"))
            db_url = stack.enter_context(fresh_database(self.database_url, data_dir))
            stack.callback(delete_queue_keys, self.redis.url, queue_name)
            env = edm_environment(
                data_dir=data_dir,
                database_url=db_url,
                redis_url=self.redis.url,
                smtp_url=self.sink.url,
                queue_name=queue_name,
                overrides={"EDM_TX_FROM_ADDRESS": FROM_ADDRESS, **overrides},
            )
            _progress(f"{self.database}: importing {self.expected:,} recipients")
            import_list(env, csv_path, self.expected, self.timeout_s)
            campaigns = {
                phase: create_campaign(env, f"Bench {phase}") for phase in ["alone", *paths]
            }
            token = api_token(env)
            password = submission_password(env) if submission else ""
            prefix = f"tx-{self.database}"
            workers = start_workers(stack, env, prefix, [2], self.log_dir)
            senders: dict[str, Callable[[], ApiSender | SubmissionSender]] = {}
            api_url, api_pid = start_api(stack, env, self.log_dir / f"{prefix}-api.log")
            senders["api"] = lambda: ApiSender(api_url, token, connections=self.sizes.api_clients)
            if submission:
                port = start_submission(stack, env, self.log_dir / f"{prefix}-submission.log")
                senders["submission"] = lambda: SubmissionSender(port, password)
            groups = ProcessGroups(
                workers=[process.pid for process, _ in workers],
                sink_pid=self.sink.pid,
                redis_pid=self.redis.pid,
                database_name=make_url(db_url).database if db_url else None,
            )
            for path in paths:
                self._warm_up(path, senders[path])

            _progress(f"{self.database}: campaign alone")
            alone = self._campaign(env, campaigns["alone"], workers, groups, "alone")
            result["campaign_alone"] = alone
            _progress(f"  {alone['messages_per_s']:,.0f} msg/s")
            for path in paths:
                _progress(
                    f"{self.database}: campaign with {self.sizes.tx_messages:,} messages "
                    f"through {path} at {self.sizes.tx_rate_per_s:g}/s"
                )
                with self._profiled(f"{path}-beside-campaign", [*groups.workers, api_pid]) as run:
                    beside = self._campaign_with_tx(
                        env, campaigns[path], workers, groups, path, senders[path]
                    )
                    run.update(messages=self.expected, elapsed_s=beside["campaign"]["elapsed_s"])
                beside["campaign"]["ratio_to_alone"] = (
                    beside["campaign"]["messages_per_s"] / alone["messages_per_s"]
                )
                result[f"campaign_with_{path}"] = beside
                _progress(
                    f"  campaign {beside['campaign']['messages_per_s']:,.0f} msg/s; "
                    f"p50 {beside['latency']['p50_ms']:.0f} ms, "
                    f"p99 {beside['latency']['p99_ms']:.0f} ms"
                )
            _progress(
                f"{self.database}: API alone, {self.sizes.api_messages:,} messages from "
                f"{self.sizes.api_clients} clients"
            )
            with self._profiled("api-alone", [api_pid, *groups.workers]) as run:
                result["api_alone"] = self._api_alone(senders["api"])
                run.update(
                    messages=self.sizes.api_messages,
                    elapsed_s=result["api_alone"]["delivered_s"],
                )
            _progress(
                f"  {result['api_alone']['accepted_per_s']:,.0f} accepted/s, "
                f"{result['api_alone']['delivered_per_s']:,.0f} delivered/s"
            )
            result["settings"] = {
                "tx_processes": Settings.from_env(env).tx_processes,
                "worker": "one `edm worker --concurrency 2`",
                **{key: value for key, value in overrides.items()},
            }
        return result

    @contextlib.contextmanager
    def _profiled(self, phase: str, pids: list[int]) -> Iterator[dict[str, Any]]:
        """py-spy on ``pids`` while inside, with ``--profile``; the caller sets the messages
        and seconds the summary divides by."""
        figures: dict[str, Any] = {"messages": 1, "elapsed_s": 1.0}
        if not self.profile:
            yield figures
            return
        recorder = PySpyRecorder(self.log_dir / f"tx-{self.database}-{phase}-profile.txt")
        recorder.start(pids)
        try:
            yield figures
        finally:
            recorder.stop(**figures)
            _progress(f"  profile: {recorder.summary_path}")

    def _campaign(
        self,
        env: dict[str, str],
        campaign_id: int,
        workers: Workers,
        groups: ProcessGroups,
        phase: str,
    ) -> dict[str, Any]:
        timing = send_campaign(
            env,
            campaign_id,
            self.sink,
            workers,
            groups,
            self.expected,
            self.log_dir / f"tx-{self.database}-{phase}",
            self.timeout_s,
            received=lambda: self.sink.unmarked_count,
        )
        return self._campaign_figures(env, campaign_id, timing)

    def _campaign_figures(
        self, env: dict[str, str], campaign_id: int, timing: Timing
    ) -> dict[str, Any]:
        status = final_status(Settings.from_env(env), campaign_id)
        return {
            "messages": self.expected,
            "elapsed_s": timing.elapsed_s,
            "messages_per_s": self.expected / timing.elapsed_s,
            "first_message_s": timing.first_message_s,
            "sent_in_database": status.counts.get("sent", 0),
            "campaign_state": status.state,
            "cpu": timing.cpu,
        }

    def _campaign_with_tx(
        self,
        env: dict[str, str],
        campaign_id: int,
        workers: Workers,
        groups: ProcessGroups,
        path: str,
        make_sender: Callable[[], ApiSender | SubmissionSender],
    ) -> dict[str, Any]:
        addresses = recipients(f"{self.database}-{path}", self.sizes.tx_messages)
        base = self.sink.unmarked_count
        duplicates_before = self.sink.duplicate_arrivals

        def campaign_flows() -> bool:
            return self.sink.unmarked_count > base

        # Messages start once the campaign's first messages arrive, so each meets it sending.
        pacer = _InThread(
            _after(campaign_flows, self.timeout_s, _paced(make_sender, addresses, self.sizes))
        )
        started = time.monotonic()
        timing = send_campaign(
            env,
            campaign_id,
            self.sink,
            workers,
            groups,
            self.expected,
            self.log_dir / f"tx-{self.database}-{path}",
            self.timeout_s,
            received=lambda: self.sink.unmarked_count,
        )
        campaign_ended = started + timing.elapsed_s
        accepted = pacer.result(timeout_s=self.timeout_s)
        arrivals = self._wait_for_arrivals(addresses)
        during = {address: at for address, at in accepted.items() if at <= campaign_ended}
        return {
            "path": path,
            "messages": len(addresses),
            "rate_per_s": self.sizes.tx_rate_per_s,
            "campaign": self._campaign_figures(env, campaign_id, timing),
            "latency": summarise(accepted, arrivals).as_dict(),
            "latency_while_campaign_sent": summarise(during, arrivals).as_dict(),
            "duplicates_at_sink": self.sink.duplicate_arrivals - duplicates_before,
        }

    def _api_alone(self, make_sender: Callable[[], ApiSender | SubmissionSender]) -> dict[str, Any]:
        addresses = recipients(f"{self.database}-burst", self.sizes.api_messages)
        started = time.monotonic()
        accepted = asyncio.run(_concurrent(make_sender, addresses, self.sizes.api_clients))
        arrivals = self._wait_for_arrivals(addresses)
        accepted_s = max(accepted.values()) - started
        delivered_s = max(arrivals[address] for address in addresses) - started
        return {
            "messages": len(addresses),
            "clients": self.sizes.api_clients,
            "accepted_s": accepted_s,
            "accepted_per_s": len(addresses) / accepted_s,
            "delivered_s": delivered_s,
            "delivered_per_s": len(addresses) / delivered_s,
            "latency": summarise(accepted, arrivals).as_dict(),
        }

    def _warm_up(self, path: str, make_sender: Callable[[], ApiSender | SubmissionSender]) -> None:
        """A few messages first, so the first timed ones do not pay for imports and connections
        of the server and the transactional lane."""
        addresses = recipients(f"{self.database}-warm-up-{path}", WARM_UP_MESSAGES)
        asyncio.run(_concurrent(make_sender, addresses, 1))
        self._wait_for_arrivals(addresses)

    def _wait_for_arrivals(self, addresses: list[str]) -> dict[str, float]:
        deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
        while time.monotonic() < deadline:
            arrivals = self.sink.arrivals
            if all(address in arrivals for address in addresses):
                return arrivals
            time.sleep(0.05)
        arrivals = self.sink.arrivals
        missing = sum(address not in arrivals for address in addresses)
        raise RuntimeError(
            f"{missing} of {len(addresses)} transactional messages not at the sink "
            f"{ARRIVAL_TIMEOUT_S:g} s after the last was accepted"
        )


async def _paced(
    make_sender: Callable[[], ApiSender | SubmissionSender], addresses: list[str], sizes: Sizes
) -> dict[str, float]:
    async with make_sender() as sender:
        return await send_paced(sender.send, addresses, sizes.tx_rate_per_s)


async def _concurrent(
    make_sender: Callable[[], ApiSender | SubmissionSender], addresses: list[str], clients: int
) -> dict[str, float]:
    async with make_sender() as sender:
        return await send_concurrently(sender.send, addresses, clients)


async def _after(
    condition: Callable[[], bool],
    timeout_s: float,
    then: Coroutine[Any, Any, dict[str, float]],
) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            then.close()
            raise RuntimeError(f"the campaign sent nothing within {timeout_s:g} s")
        await asyncio.sleep(0.005)
    return await then


class _InThread:
    """A coroutine run to its end on an event loop in a thread of its own, while this thread
    waits for the campaign."""

    def __init__(self, coroutine: Coroutine[Any, Any, dict[str, float]]) -> None:
        self._outcome: dict[str, float] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(coroutine,), daemon=True)
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, dict[str, float]]) -> None:
        try:
            self._outcome = asyncio.run(coroutine)
        except BaseException as error:  # handed to the waiting thread
            self._outcome = error

    def result(self, *, timeout_s: float) -> dict[str, float]:
        self._thread.join(timeout_s)
        outcome = self._outcome
        if self._thread.is_alive() or outcome is None:
            raise RuntimeError(f"the transactional messages were not all sent in {timeout_s:g} s")
        if isinstance(outcome, BaseException):
            raise RuntimeError(f"sending transactional messages: {outcome}") from outcome
        return outcome


if __name__ == "__main__":
    main()
