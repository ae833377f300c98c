"""The ``edm`` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.config import Settings
from campaigns.errors import EdmError, InputError
from campaigns.models import JobState
from campaigns.storage import Database, open_database

if TYPE_CHECKING:
    # Only for annotations: the importer loads pandas, which most commands never need.
    from campaigns.importer import RejectedRow

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
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep the worker running and serve the dashboard until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=8000, help="dashboard port with --serve (8000)")
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
    create.add_argument(
        "--no-tracking",
        action="store_true",
        help="no open pixel and no click redirects (the unsubscribe link stays)",
    )
    create.add_argument(
        "--relay",
        action="append",
        default=[],
        dest="relays",
        metavar="NAME",
        help="send only through this configured relay (repeatable; default: every relay)",
    )
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

    failures = campaigns.add_parser(
        "failures", help="every recipient not delivered, with the relay's last reply"
    )
    failures.add_argument("id", type=int)
    failures.add_argument("--csv", action="store_true", help="CSV on stdout, safe for spreadsheets")
    failures.add_argument(
        "--state",
        action="append",
        dest="states",
        choices=[state.value for state in JobState if state != JobState.SENT],
        help="only jobs in this state (repeatable)",
    )
    failures.set_defaults(handler=_campaigns_failures)

    retry = campaigns.add_parser(
        "retry", help="send again to recipients whose failure may pass (never hard bounces)"
    )
    retry.add_argument("id", type=int)
    retry.add_argument(
        "--include-unknown",
        action="store_true",
        help="also messages with no reply to the final '.' (the recipient may get them twice)",
    )
    retry.add_argument(
        "--include-policy",
        action="store_true",
        help="also 5.7.x policy refusals, once their cause (DNS, authentication) is fixed",
    )
    retry.set_defaults(handler=_campaigns_retry)

    _add_suppression_commands(commands)
    _add_dkim_commands(commands)
    _add_bounce_commands(commands)

    worker = commands.add_parser("worker", help="run a delivery worker (and the dispatcher)")
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not run a dispatcher here (one runs elsewhere)",
    )
    worker.set_defaults(handler=_worker)

    track = commands.add_parser("track", help="serve the open, click and unsubscribe links")
    track.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    track.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    track.set_defaults(handler=_track)

    from dashboard.commands import add_dashboard_commands

    add_dashboard_commands(commands)
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
    _print_rejected_rows(args.path, report.errors)


def _print_rejected_rows(path: Path, errors: Sequence[RejectedRow], shown: int = 20) -> None:
    for error in errors[:shown]:
        print(f"  {path}:{error.line}: {error.reason}")
    if len(errors) > shown:
        print(f"  ... and {len(errors) - shown} more (use --json for all)")


def _campaigns_create(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.campaign_service import create_campaign
    from workers.relay_config import relay_names

    campaign = create_campaign(
        _database(settings),
        name=args.name,
        list_name=args.list_name,
        template=args.template,
        from_address=args.from_address,
        subject=args.subject,
        templates_dir=settings.templates_dir,
        tracking=not args.no_tracking,
        relays=args.relays,
        configured_relays=relay_names(settings) if args.relays else (),
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


def _campaigns_failures(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.failure_report import write_csv, write_table
    from campaigns.failures import undelivered_recipients

    recipients = undelivered_recipients(_database(settings), args.id, states=args.states or ())
    if args.csv:
        write_csv(recipients, sys.stdout)
        return
    if write_table(recipients, sys.stdout) == 0:
        print(f"campaign {args.id}: no undelivered recipients")


def _campaigns_retry(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.failures import retry_failures

    result = retry_failures(
        _database(settings),
        args.id,
        include_unknown=args.include_unknown,
        include_policy=args.include_policy,
    )
    by_class = ", ".join(f"{count} {name}" for name, count in sorted(result.requeued.items()))
    print(
        f"campaign {args.id} is {result.campaign_state}: {sum(result.requeued.values())} "
        f"recipients queued again{f' ({by_class})' if by_class else ''}, "
        f"{result.due_now} deferred now due"
    )


def _add_suppression_commands(commands: Any) -> None:
    from campaigns.suppression import SuppressionReason

    reasons = [reason.value for reason in SuppressionReason]
    suppression = commands.add_parser(
        "suppression", help="addresses never mailed again"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    importing = suppression.add_parser("import", help="suppress every address in a CSV")
    importing.add_argument("path", type=Path)
    importing.add_argument(
        "--reason",
        choices=reasons,
        default="manual",
        help="for rows without a reason column (default: manual)",
    )
    importing.add_argument("--encoding", help="the CSV's encoding when it is not UTF-8/UTF-16")
    importing.add_argument("--json", action="store_true", help="print the report as JSON")
    importing.set_defaults(handler=_suppression_import)

    adding = suppression.add_parser("add", help="suppress one or more addresses")
    adding.add_argument("addresses", nargs="+", metavar="ADDRESS")
    adding.add_argument("--reason", choices=reasons, default="manual")
    adding.add_argument("--detail", help="a note kept with the entry")
    adding.set_defaults(handler=_suppression_add)

    export = suppression.add_parser("export", help="the list as CSV, safe for spreadsheets")
    export.add_argument("--csv", type=Path, metavar="PATH", help="write here, not to stdout")
    export.set_defaults(handler=_suppression_export)

    remove = suppression.add_parser("remove", help="allow mail to an address again")
    remove.add_argument("address")
    remove.set_defaults(handler=_suppression_remove)


def _add_dkim_commands(commands: Any) -> None:
    dkim = commands.add_parser("dkim", help="DKIM signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    keygen = dkim.add_parser("keygen", help="make a signing key and print its DNS record")
    keygen.add_argument("--selector", required=True)
    keygen.add_argument("--domain", required=True, help="the d= domain, usually the From domain")
    keygen.add_argument("--type", choices=["rsa", "ed25519"], default="rsa", dest="key_type")
    keygen.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="private key file (default: DATA_DIR/dkim/SELECTOR._domainkey.DOMAIN.pem)",
    )
    keygen.add_argument("--json", action="store_true")
    keygen.set_defaults(handler=_dkim_keygen)


def _suppression_import(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.suppression import SuppressionReason
    from campaigns.suppression_import import import_suppressions

    report = import_suppressions(
        _database(settings),
        args.path,
        reason=SuppressionReason(args.reason),
        encoding=args.encoding,
    )
    if args.json:
        _print_json(report.as_dict())
        return
    print(
        f"{args.path} -> suppression list: {report.added} added, "
        f"{report.already_suppressed} already suppressed, {report.duplicates} duplicates, "
        f"{report.rejected} rejected"
    )
    _print_rejected_rows(args.path, report.errors)


def _suppression_add(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.suppression import SuppressionReason, add_suppressions

    added = add_suppressions(
        _database(settings),
        args.addresses,
        reason=SuppressionReason(args.reason),
        detail=args.detail,
    )
    print(f"{added} added to the suppression list")


def _suppression_export(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.csv_export import write_csv, write_csv_file
    from campaigns.suppression import EXPORT_COLUMNS, iter_suppressions

    rows = (
        (entry.email_key, entry.reason, entry.detail, entry.created_at)
        for entry in iter_suppressions(_database(settings))
    )
    if args.csv is None:
        write_csv(rows, EXPORT_COLUMNS, sys.stdout)
        return
    count = write_csv_file(args.csv, rows, EXPORT_COLUMNS)
    print(f"{count} suppressed addresses written to {args.csv}")


def _suppression_remove(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.suppression import remove_suppression

    remove_suppression(_database(settings), args.address)
    print(f"{args.address.strip()} removed from the suppression list")


def _dkim_keygen(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.dkim import checked_dns_name
    from campaigns.dkim_keys import dns_record, generate_private_key, write_private_key

    selector = checked_dns_name(args.selector, "--selector", InputError)
    domain = checked_dns_name(args.domain, "--domain", InputError)
    path = args.out or settings.data_dir / "dkim" / f"{selector}._domainkey.{domain}.pem"
    path = path.expanduser().resolve()
    key = generate_private_key(args.key_type)
    record = dns_record(key, selector=selector, domain=domain)
    write_private_key(key, path)
    if args.json:
        _print_json(
            {
                "key_file": str(path),
                "type": args.key_type,
                "name": record.name,
                "value": record.value,
                "strings": record.strings,
            }
        )
        return
    print(f"private key written to {path} (readable by its owner only; keep it secret)")
    print("publish this DNS TXT record:")
    print(f"  name:  {record.name}")
    print(f"  value: {record.zone_value()}")
    print(
        f"then set EDM_DKIM_DOMAIN={domain} EDM_DKIM_SELECTOR={selector} EDM_DKIM_KEY_FILE={path}"
    )


def _worker(args: argparse.Namespace, settings: Settings) -> None:
    from workers.worker_command import run_worker

    if args.concurrency < 1:
        raise InputError("--concurrency: must be at least 1")
    _database(settings)
    run_worker(settings, concurrency=args.concurrency, dispatcher=not args.no_dispatcher)


def _track(args: argparse.Namespace, settings: Settings) -> None:
    from dashboard.tracking_app import serve_tracking

    if not 0 < args.port < 65536:
        raise InputError(f"--port: {args.port} is not a TCP port")
    serve_tracking(settings, host=args.host, port=args.port)


def _demo(args: argparse.Namespace, settings: Settings) -> None:
    from campaigns.demo import run_demo

    if args.serve and not 0 < args.port < 65536:
        raise InputError(f"--port: {args.port} is not a TCP port")
    run_demo(settings, serve_port=args.port if args.serve else None)


def _add_bounce_commands(commands: Any) -> None:
    bounces = commands.add_parser(
        "bounces", help="receive bounces and complaints after sending"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = bounces.add_parser("serve", help="inbound SMTP server for the bounce domain's MX")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serve.add_argument("--port", type=int, default=25, help="port to listen on (25)")
    serve.set_defaults(handler=_bounces_serve)
    poll = bounces.add_parser("poll", help="read bounces from an IMAP or POP3 mailbox")
    poll.add_argument(
        "--url", required=True, help="imaps://user:pass@host:993/INBOX, imap://, pop3://, pop3s://"
    )
    when = poll.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one pass, then exit")
    when.add_argument(
        "--every", type=float, default=60.0, metavar="SECONDS", help="seconds between passes (60)"
    )
    poll.set_defaults(handler=_bounces_poll)


def _bounce_intake(settings: Settings) -> Any:
    import logging

    from campaigns.bounces.intake import BounceIntake

    database = _database(settings)
    # After the migrations, whose INFO lines are of no interest here.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Its detectors log every step at INFO.
    logging.getLogger("flufl.bounce").setLevel(logging.WARNING)
    return BounceIntake.from_settings(settings, database)


def _bounces_serve(args: argparse.Namespace, settings: Settings) -> None:
    from workers.bounce_server import run_bounce_server

    if not 0 <= args.port < 65536:
        raise InputError(f"--port: {args.port} is not a TCP port")
    intake = _bounce_intake(settings)
    try:
        run_bounce_server(settings, intake, host=args.host, port=args.port)
    except OSError as error:
        raise InputError(
            f"--host/--port: cannot listen on {args.host}:{args.port}: {error.strerror or error}"
        ) from None


def _bounces_poll(args: argparse.Namespace, settings: Settings) -> None:
    from workers.bounce_mailbox import parse_mailbox_url, poll_mailbox, run_poller

    mailbox = parse_mailbox_url(args.url)
    if args.every <= 0:
        raise InputError("--every: must be more than 0 seconds")
    intake = _bounce_intake(settings)
    if args.once:
        print(f"{mailbox.redacted()}: {poll_mailbox(mailbox, intake).describe()}")
        return
    run_poller(mailbox, intake, interval_s=args.every)


if __name__ == "__main__":
    main()
