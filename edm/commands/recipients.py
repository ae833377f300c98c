"""``edm recipients`` (a person across lists) and ``edm maintenance prune``."""

from __future__ import annotations

import argparse
import getpass
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from campaigns.audience.audit import record_audit
from campaigns.audience.erasure import erase_person
from campaigns.audience.people import person_record
from campaigns.audience.recipient_edits import (
    parse_field_assignments,
    remove_from_list,
    update_fields,
)
from campaigns.audience.retention import prune_history
from campaigns.core.errors import InputError
from campaigns.core.models import utc_now
from campaigns.core.settings import Settings
from edm.command_helpers import database, print_json


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def show(args: argparse.Namespace, settings: Settings) -> None:
    record = person_record(database(settings), args.email)
    if args.json:
        print_json(record)
        return
    print(record["email"])
    suppression = record["suppression"]
    if suppression:
        print(f"  suppressed: {suppression['reason']} since {suppression['created_at']:%Y-%m-%d}")
    for row in record["lists"]:
        fields = ", ".join(f"{k}={v}" for k, v in row["fields"].items() if k != "email")
        print(f"  list {row['list']!r}: {fields}")
    for message in record["messages"]:
        events = ", ".join(event["kind"] for event in message["events"]) or "no events"
        print(
            f"  message {message['job_id']} of campaign {message['campaign_id']} "
            f"({message['campaign']}): {message['state']}; {events}"
        )


def update(args: argparse.Namespace, settings: Settings) -> None:
    fields = update_fields(
        database(settings), args.email, args.list_name, parse_field_assignments(args.fields)
    )
    print(f"{args.email.strip()} in {args.list_name!r}: {len(fields)} fields")


def remove(args: argparse.Namespace, settings: Settings) -> None:
    remove_from_list(database(settings), args.email, args.list_name)
    print(f"{args.email.strip()} removed from {args.list_name!r}")


def export(args: argparse.Namespace, settings: Settings) -> None:
    db = database(settings)
    record = person_record(db, args.email)
    text = json.dumps(record, ensure_ascii=False, default=str, indent=2)
    with db.session() as session:
        record_audit(session, "export", cli_actor(), {"messages": len(record["messages"])})
    if args.out is None:
        print(text)
        return
    _write_new(args.out, text + "\n")
    print(f"everything held about {record['email']} written to {args.out}")


def erase(args: argparse.Namespace, settings: Settings) -> None:
    report = erase_person(
        database(settings),
        args.email,
        secret=settings.secret,
        data_dir=settings.data_dir,
        actor=cli_actor(),
    )
    if args.json:
        print_json(asdict(report))
        return
    print(
        f"erased: {report.list_rows} list rows, {report.messages} messages kept without the "
        f"address ({report.messages_stopped} not sent yet stopped), {report.events_changed} "
        f"events and {report.texts_changed} texts changed, {report.files_changed} files changed"
    )


def prune(args: argparse.Namespace, settings: Settings) -> None:
    report = prune_history(
        database(settings), retention_days=settings.event_retention_days, now=utc_now()
    )
    result: dict[str, Any] = asdict(report)
    if args.json:
        print_json(result)
        return
    print(
        f"before {report.before:%Y-%m-%d %H:%M} UTC: {report.events} events deleted, "
        f"{report.replies} reply texts cleared"
    )


def _write_new(path: Path, text: str) -> None:
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise InputError(f"--out: {path} exists; choose another path") from None
    except OSError as error:
        raise InputError(f"--out: {path}: {error.strerror}") from None
