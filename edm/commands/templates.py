"""``edm templates``: the templates folder (list, delete, rename)."""

from __future__ import annotations

import argparse

from campaigns.core.settings import Settings
from campaigns.lifecycle.template_removal import delete_template, rename_template
from dashboard.template_files import summaries
from edm.command_helpers import database, print_json


def list_templates(args: argparse.Namespace, settings: Settings) -> None:
    folder = settings.resolved_templates_dir
    found = summaries(folder)
    if args.json:
        print_json(
            {
                "folder": str(folder),
                "templates": [
                    {"name": t.name, "subject": t.subject, "variables": t.variables} for t in found
                ],
            }
        )
        return
    if not found:
        print(f"no templates in {folder}")
    for template in found:
        print(f"{template.name}\t{template.subject}")


def delete(args: argparse.Namespace, settings: Settings) -> None:
    folder = settings.resolved_templates_dir
    delete_template(database(settings), folder, args.name)
    print(f"template {args.name!r} deleted from {folder} (campaigns keep their own copy)")


def rename(args: argparse.Namespace, settings: Settings) -> None:
    rename_template(database(settings), settings.resolved_templates_dir, args.name, args.new_name)
    print(f"template {args.name!r} is now {args.new_name!r}")
