"""``edm campaigns``: create, schedule, watch, pause, resume, cancel, failures, retry, and
housekeeping (list, edit, clone, archive, delete)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle import campaign_service, failure_report
from campaigns.lifecycle.campaign_edits import (
    DraftChanges,
    archive_campaign,
    clone_campaign,
    delete_campaign,
    edit_draft,
)
from campaigns.lifecycle.campaign_service import campaign_status, create_campaign, schedule_campaign
from campaigns.lifecycle.failures import retry_failures, undelivered_recipients
from campaigns.lifecycle.schedule_requests import CLI_FIELDS, schedule_plan
from dashboard.campaign_queries import campaign_rows
from dashboard.campaign_rates import campaign_rates
from edm.command_helpers import database, print_json
from workers.relays.config import relay_names


def create(args: argparse.Namespace, settings: Settings) -> None:
    campaign = create_campaign(
        database(settings),
        name=args.name,
        list_name=args.list_name,
        template=args.template,
        from_address=args.from_address,
        subject=args.subject,
        templates_dir=settings.resolved_templates_dir,
        tracking=not args.no_tracking,
        relays=args.relays,
        configured_relays=relay_names(settings) if args.relays else (),
    )
    if args.json:
        print_json({"id": campaign.id, "name": campaign.name, "state": campaign.state})
    else:
        print(f"campaign {campaign.id} created ({campaign.state}): {campaign.name}")


def schedule(args: argparse.Namespace, settings: Settings) -> None:
    if args.local_time and args.now:
        raise InputError("--local-time: needs --at with the wall-clock time to send at")
    plan = schedule_plan(
        "local_time" if args.local_time else "now" if args.now else "at",
        at=args.at,
        timezone=args.tz,
        timezone_field=args.tz_field,
        spread_hours=args.spread_hours,
        fields=CLI_FIELDS,
    )
    result = schedule_campaign(
        database(settings),
        args.id,
        send_at=plan.send_at,
        local_time=plan.local_time,
        spread_hours=plan.spread_hours,
        render_cpu_limit_s=settings.template_render_cpu_s,
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


def status(args: argparse.Namespace, settings: Settings) -> None:
    status = campaign_status(database(settings), args.id)
    if args.json:
        print_json(status.as_dict())
        return
    print(f"campaign {status.id} {status.name!r}: {status.state}, {status.total} recipients")
    for state, count in status.counts.items():
        if count:
            print(f"  {state:>10}: {count}")


def transition(args: argparse.Namespace, settings: Settings) -> None:
    actions: dict[str, Callable[[Database, int], str]] = {
        "pause": campaign_service.pause_campaign,
        "resume": campaign_service.resume_campaign,
        "cancel": campaign_service.cancel_campaign,
    }
    state = actions[args.transition](database(settings), args.id)
    print(f"campaign {args.id} is now {state}")


def failures(args: argparse.Namespace, settings: Settings) -> None:
    recipients = undelivered_recipients(database(settings), args.id, states=args.states or ())
    if args.csv:
        failure_report.write_csv(recipients, sys.stdout)
        return
    if failure_report.write_table(recipients, sys.stdout) == 0:
        print(f"campaign {args.id}: no undelivered recipients")


def retry(args: argparse.Namespace, settings: Settings) -> None:
    result = retry_failures(
        database(settings),
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


MAX_LISTED = 10_000


def list_campaigns(args: argparse.Namespace, settings: Settings) -> None:
    if not 1 <= args.limit <= MAX_LISTED:
        raise InputError(f"--limit: between 1 and {MAX_LISTED}, got {args.limit}")
    db = database(settings)
    rows = campaign_rows(db, archived=args.archived, limit=args.limit)
    rates = campaign_rates(db, [row.id for row in rows])
    if args.json:
        print_json({"campaigns": [{**asdict(row), "rates": asdict(rates[row.id])} for row in rows]})
        return
    if not rows:
        print("no archived campaigns" if args.archived else "no campaigns")
        return
    for row in rows:
        rate = rates[row.id]
        print(
            f"{row.id}\t{row.state}\t{row.name}\tlist {row.list_name}\t"
            f"{rate.sent}/{rate.recipients} sent\t{_percent(rate.open_rate)} opened\t"
            f"{_percent(rate.click_rate)} clicked"
        )


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate}%"


def edit(args: argparse.Namespace, settings: Settings) -> None:
    changes = DraftChanges(
        name=args.name,
        list_name=args.list_name,
        template=args.template,
        from_address=args.from_address,
        subject=args.subject,
        tracking=args.tracking,
        relays=args.relays,
    )
    if changes == DraftChanges():
        raise InputError(
            "edm campaigns edit: give at least one of --name, --list, --template, "
            "--from, --subject, --tracking/--no-tracking, --relay/--any-relay"
        )
    campaign = edit_draft(
        database(settings),
        args.id,
        changes,
        templates_dir=settings.resolved_templates_dir,
        configured_relays=relay_names(settings) if args.relays else (),
    )
    print(f"campaign {campaign.id} edited ({campaign.state}): {campaign.name}")


def clone(args: argparse.Namespace, settings: Settings) -> None:
    campaign = clone_campaign(database(settings), args.id, name=args.name)
    print(
        f"campaign {campaign.id} created ({campaign.state}) from campaign {args.id}: "
        f"{campaign.name}"
    )


def archive(args: argparse.Namespace, settings: Settings) -> None:
    campaign = archive_campaign(database(settings), args.id, archived=not args.undo)
    where = "back in the campaign list" if args.undo else "archived (history and counters kept)"
    print(f"campaign {campaign.id} is {where}")


def delete(args: argparse.Namespace, settings: Settings) -> None:
    name = delete_campaign(database(settings), args.id)
    print(f"campaign {args.id} deleted: {name}")
