"""What the subcommands share: the database, JSON output, rejected rows, ports, passwords."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.core.storage import Database, open_database

if TYPE_CHECKING:
    # Only an annotation: the importer loads pandas, which most commands never need.
    from campaigns.lists.importer import RejectedRow


def database(settings: Settings) -> Database:
    return open_database(settings.resolved_database_url)


def print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, default=str))


def print_rejected_rows(path: Path, errors: Sequence[RejectedRow], shown: int = 20) -> None:
    for error in errors[:shown]:
        print(f"  {path}:{error.line}: {error.reason}")
    if len(errors) > shown:
        print(f"  ... and {len(errors) - shown} more (use --json for all)")


def check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise InputError(f"--port: {port} is not a TCP port")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for a password on: use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise InputError("the two passwords differ")
    return first
