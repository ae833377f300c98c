"""``edm users``: dashboard accounts and their API tokens."""

from __future__ import annotations

import argparse

from campaigns.core.settings import Settings
from dashboard.accounts import create_api_token, create_user, set_password
from edm.command_helpers import database, read_password


def create(args: argparse.Namespace, settings: Settings) -> None:
    password = read_password(args.password_stdin)
    user = create_user(database(settings), args.email, password)
    print(f"user {user.email} created: sign in at the dashboard (`edm serve`)")


def password(args: argparse.Namespace, settings: Settings) -> None:
    password = read_password(args.password_stdin)
    user = set_password(database(settings), args.email, password)
    print(f"password of {user.email} changed; their browsers are signed out")


def token(args: argparse.Namespace, settings: Settings) -> None:
    print(create_api_token(database(settings), args.email))
