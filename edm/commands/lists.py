"""``edm lists``: importing recipient CSVs, listing, showing and exporting lists."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from campaigns.core.settings import Settings
from campaigns.core.spreadsheet_csv import write_csv, write_csv_file
from campaigns.lists.importer import import_recipients
from dashboard.list_queries import iter_list_rows, list_id_by_name, list_summaries, list_summary
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
    summaries = list_summaries(database(settings))
    if args.json:
        print_json({"lists": [asdict(summary) for summary in summaries]})
        return
    for summary in summaries:
        print(f"{summary.name}\t{summary.recipients} recipients\t{', '.join(summary.field_names)}")


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
