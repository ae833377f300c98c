"""``edm lists``: importing recipient CSVs."""

from __future__ import annotations

import argparse

from campaigns.core.settings import Settings
from campaigns.lists.importer import import_recipients
from edm.command_helpers import database, print_json, print_rejected_rows


def import_file(args: argparse.Namespace, settings: Settings) -> None:
    report = import_recipients(
        database(settings), args.path, args.list_name, encoding=args.encoding
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
