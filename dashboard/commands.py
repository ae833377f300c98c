"""``edm serve`` and ``edm users``: the dashboard's commands, added to the ``edm`` parser."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from campaigns.config import Settings
from campaigns.errors import InputError


def add_dashboard_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve the dashboard, its JSON API, /metrics and the tracking links"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.set_defaults(handler=_serve)

    users = commands.add_parser("users", help="dashboard accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = users.add_parser("create", help="make an account that can sign in")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else it is asked for)",
    )
    create.set_defaults(handler=_users_create)
    password = users.add_parser("password", help="set a new password (signs out every browser)")
    password.add_argument("--email", required=True)
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(handler=_users_password)
    token = users.add_parser("token", help="print a new API token (Authorization: Bearer)")
    token.add_argument("--email", required=True)
    token.set_defaults(handler=_users_token)


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


def _database(settings: Settings) -> Any:
    from campaigns.storage import open_database

    return open_database(settings.resolved_database_url)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from dashboard.server import serve_dashboard

    check_port(args.port)
    serve_dashboard(settings, host=args.host, port=args.port)


def _users_create(args: argparse.Namespace, settings: Settings) -> None:
    from dashboard.accounts import create_user

    password = read_password(args.password_stdin)
    user = create_user(_database(settings), args.email, password)
    print(f"user {user.email} created: sign in at the dashboard (`edm serve`)")


def _users_password(args: argparse.Namespace, settings: Settings) -> None:
    from dashboard.accounts import set_password

    password = read_password(args.password_stdin)
    user = set_password(_database(settings), args.email, password)
    print(f"password of {user.email} changed; their browsers are signed out")


def _users_token(args: argparse.Namespace, settings: Settings) -> None:
    from dashboard.accounts import create_api_token

    print(create_api_token(_database(settings), args.email))
