"""``edm suppression``: addresses never mailed again."""

from __future__ import annotations

import argparse
import sys

from campaigns.core.settings import Settings
from campaigns.core.spreadsheet_csv import write_csv, write_csv_file
from campaigns.lists.suppression import (
    EXPORT_COLUMNS,
    SuppressionReason,
    add_suppressions,
    iter_suppressions,
    remove_suppression,
)
from campaigns.lists.suppression_import import import_suppressions
from edm.command_helpers import database, print_json, print_rejected_rows


def import_file(args: argparse.Namespace, settings: Settings) -> None:
    report = import_suppressions(
        database(settings),
        args.path,
        reason=SuppressionReason(args.reason),
        encoding=args.encoding,
    )
    if args.json:
        print_json(report.as_dict())
        return
    print(
        f"{args.path} -> suppression list: {report.added} added, "
        f"{report.already_suppressed} already suppressed, {report.duplicates} duplicates, "
        f"{report.rejected} rejected"
    )
    print_rejected_rows(args.path, report.errors)


def add(args: argparse.Namespace, settings: Settings) -> None:
    added = add_suppressions(
        database(settings),
        args.addresses,
        reason=SuppressionReason(args.reason),
        detail=args.detail,
    )
    print(f"{added} added to the suppression list")


def export(args: argparse.Namespace, settings: Settings) -> None:
    rows = (
        (entry.email_key, entry.reason, entry.detail, entry.created_at)
        for entry in iter_suppressions(database(settings))
    )
    if args.csv is None:
        write_csv(rows, EXPORT_COLUMNS, sys.stdout)
        return
    count = write_csv_file(args.csv, rows, EXPORT_COLUMNS)
    print(f"{count} suppressed addresses written to {args.csv}")


def remove(args: argparse.Namespace, settings: Settings) -> None:
    remove_suppression(database(settings), args.address)
    print(f"{args.address.strip()} removed from the suppression list")
