"""``edm lists``: importing recipient CSVs; listing, showing, exporting, deleting, renaming."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from campaigns.core.settings import Settings
from campaigns.core.spreadsheet_csv import write_csv, write_csv_file
from campaigns.lifecycle.list_removal import (
    delete_list,
    list_id_by_name,
    list_removal,
    rename_list,
)
from campaigns.lists.importer import import_recipients
from dashboard.list_queries import iter_list_rows, list_summaries, list_summary
from edm.command_helpers import database, print_json, print_rejected_rows


def import_file(args: argparse.Namespace, settings: Settings) -> None:
    report = import_recipients(
        database(settings),
        args.path,
        args.list_name,
        encoding=args.encoding,
        secret=settings.secret,
        blocked_domains=settings.blocked_domain_set(),
    )
    if args.json:
        print_json(report.as_dict())
        return
    print(
        f"{args.path} -> list {args.list_name!r}: {report.imported} imported, "
        f"{report.updated} updated, {report.duplicates} duplicates, "
        f"{report.rejected} rejected, {report.suppressed} suppressed"
    )
    print_rejected_rows(args.path, report.errors)


def list_lists(args: argparse.Namespace, settings: Settings) -> None:
    found = list_summaries(database(settings))
    if args.json:
        print_json({"lists": [asdict(summary) for summary in found]})
        return
    if not found:
        print("no lists (import one with `edm lists import`)")
    for summary in found:
        fields = ", ".join(summary.field_names)
        print(f"{summary.id}\t{summary.name}\t{summary.recipients} recipients\t{fields}")


def delete(args: argparse.Namespace, settings: Settings) -> None:
    db = database(settings)
    list_id = list_id_by_name(db, args.name)
    if not args.yes:
        removal = list_removal(db, list_id)
        print(f"would delete: {removal.summary()}; run again with --yes to delete")
        return
    removal = delete_list(db, list_id)
    print(f"deleted: {removal.summary()}")


def rename(args: argparse.Namespace, settings: Settings) -> None:
    db = database(settings)
    name = rename_list(db, list_id_by_name(db, args.name), args.new_name)
    print(f"list {args.name!r} is now {name!r}")


def show(args: argparse.Namespace, settings: Settings) -> None:
    db = database(settings)
    summary = list_summary(db, list_id_by_name(db, args.name))
    if args.json:
        print_json(asdict(summary))
        return
    print(
        f"list {summary.name!r} (id {summary.id}), created {summary.created_at:%Y-%m-%d %H:%M} UTC"
    )
    print(f"  {summary.recipients} recipients")
    print(f"  fields: {', '.join(summary.field_names)}")


def export(args: argparse.Namespace, settings: Settings) -> None:
    db = database(settings)
    rows = iter_list_rows(db, list_id_by_name(db, args.name))
    header = next(rows)
    if args.csv is None:
        write_csv(rows, header, sys.stdout)
        return
    count = write_csv_file(args.csv, rows, header)
    print(f"{count} recipients of {args.name!r} written to {args.csv}")
