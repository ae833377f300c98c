"""The ``edm`` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.config import Settings
from campaigns.errors import EdmError, InputError
from campaigns.storage import Database, open_database

EXIT_ERROR = 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        args.handler(args, settings)
    except EdmError as error:
        print(f"edm: error: {error}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edm", description="Bulk email campaign sender.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="send a sample campaign to a local capture server")
    demo.add_argument("--keep-running", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(handler=_demo)

    lists = commands.add_parser("lists", help="recipient lists").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    importing = lists.add_parser("import", help="import a recipient CSV into a list")
    importing.add_argument("path", type=Path)
    importing.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    importing.add_argument("--encoding", help="the CSV's encoding when it is not UTF-8/UTF-16")
    importing.add_argument("--json", action="store_true", help="print the report as JSON")
    importing.set_defaults(handler=_lists_import)

    campaigns = commands.add_parser("campaigns", help="campaigns").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = campaigns.add_parser("create", help="create a draft campaign")
    create.add_argument("--name", required=True)
    create.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    create.add_argument("--template", required=True, metavar="PATH_OR_NAME")
    create.add_argument("--from", required=True, dest="from_address", metavar="ADDRESS")
    create.add_argument("--subject", help="a Jinja subject that replaces the template's")
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_campaigns_create)

    schedule = campaigns.add_parser("schedule", help="check the template and schedule sending")
    schedule.add_argument("id", type=int)
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--now", action="store_true")
    when.add_argument("--at", metavar="ISO-8601", help="e.g. 2026-12-01T09:00")
    schedule.add_argument("--tz", default="UTC", metavar="ZONE", help="zone of --at (default UTC)")
    plan = schedule.add_mutually_exclusive_group()
    plan.add_argument(
        "--local-time",
        action="store_true",
        help="send at --at on each recipient's own clock (zone from --tz-field, else --tz)",
    )
    plan.add_argument(
        "--spread-hours", type=float, default=0.0, metavar="N", help="release evenly over N hours"
    )
    schedule.add_argument(
        "--tz-field",
        default="timezone",
        metavar="FIELD",
        help="merge field holding each recipient's IANA zone (default: timezone)",
    )
    schedule.set_defaults(handler=_campaigns_schedule)

    status = campaigns.add_parser("status", help="state and counts of a campaign")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_campaigns_status)

    for action, help_text in (
        ("pause", "stop sending within a second; resume continues where it stopped"),
        ("resume", "continue a paused campaign"),
        ("cancel", "cancel every message not yet sent"),
    ):
        sub = campaigns.add_parser(action, help=help_text)
        sub.add_argument("id", type=int)
        sub.set_defaults(handler=_campaigns_transition, transition=action)

    worker = commands.add_parser("worker", help="run a delivery worker (and the dispatcher)")
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not run a dispatcher here (one runs elsewhere)",
    )
    worker.set_defaults(handler=_worker)
    return parser


def _database(settings: Settings) -> Database:
    return open_database(settings.resolved_database_url)


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, default=str))


def _lists_import(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.importer import import_recipients

    report = import_recipients(
        _database(settings), args.path, args.list_name, encoding=args.encoding
    )
    if args.json:
        _print_json(report.as_dict())
        return
    print(
        f"{args.path} -> list {args.list_name!r}: {report.imported} imported, "
        f"{report.updated} updated, {report.duplicates} duplicates, "
        f"{report.rejected} rejected, {report.suppressed} suppressed"
    )
    shown = 20
    for error in report.errors[:shown]:
        print(f"  {args.path}:{error.line}: {error.reason}")
    if len(report.errors) > shown:
        print(f"  ... and {len(report.errors) - shown} more (use --json for all)")


def _campaigns_create(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.campaign_service import create_campaign

    campaign = create_campaign(
        _database(settings),
        name=args.name,
        list_name=args.list_name,
        template=args.template,
        from_address=args.from_address,
        subject=args.subject,
        templates_dir=settings.templates_dir,
    )
    if args.json:
        _print_json({"id": campaign.id, "name": campaign.name, "state": campaign.state})
    else:
        print(f"campaign {campaign.id} created ({campaign.state}): {campaign.name}")


def parse_send_at(at: str | None, zone_name: str) -> datetime:
    """``--at`` in ``zone_name`` unless it carries its own offset; ``None`` means now."""
    if at is None:
        return datetime.now(UTC)
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"--tz: unknown time zone {zone_name!r}") from None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise InputError(f"--at: {at!r} is not an ISO-8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _campaigns_schedule(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.campaign_service import schedule_campaign
    from campaigns.send_times import LocalTimePlan

    local_time = None
    if args.local_time:
        if args.now:
            raise InputError("--local-time: needs --at with the wall-clock time to send at")
        try:
            wall_time = datetime.fromisoformat(args.at)
        except ValueError:
            raise InputError(f"--at: {args.at!r} is not an ISO-8601 date and time") from None
        local_time = LocalTimePlan(
            wall_time=wall_time, timezone_field=args.tz_field, default_zone=args.tz
        )
    send_at = parse_send_at(None if args.now else args.at, args.tz)
    result = schedule_campaign(
        _database(settings),
        args.id,
        send_at=send_at,
        local_time=local_time,
        spread_hours=args.spread_hours,
    )
    when = result.first_due.isoformat()
    if result.last_due != result.first_due:
        when = f"{when} to {result.last_due.isoformat()}"
    print(f"campaign {args.id} scheduled with {result.jobs} recipients, due {when}")
    if result.recipients_without_zone:
        print(
            f"  {result.recipients_without_zone} recipients have no known zone in "
            f"{args.tz_field!r}: sent at {args.at} {args.tz}"
        )


def _campaigns_status(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.campaign_service import campaign_status

    status = campaign_status(_database(settings), args.id)
    if args.json:
        _print_json(status.as_dict())
        return
    print(f"campaign {status.id} {status.name!r}: {status.state}, {status.total} recipients")
    for state, count in status.counts.items():
        if count:
            print(f"  {state:>10}: {count}")


def _campaigns_transition(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns import campaign_service

    actions: dict[str, Callable[[Database, int], str]] = {
        "pause": campaign_service.pause_campaign,
        "resume": campaign_service.resume_campaign,
        "cancel": campaign_service.cancel_campaign,
    }
    state = actions[args.transition](_database(settings), args.id)
    print(f"campaign {args.id} is now {state}")


def _worker(args: argparse.Namespace, settings: Settings) -> None:
    from workers.worker_command import run_worker

    if args.concurrency < 1:
        raise InputError("--concurrency: must be at least 1")
    _database(settings)
    run_worker(settings, concurrency=args.concurrency, dispatcher=not args.no_dispatcher)


def _demo(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.demo import run_demo

    run_demo(settings)


if __name__ == "__main__":
    main()
