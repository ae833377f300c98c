"""``edm users``: dashboard accounts, their roles and their API tokens."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import datetime

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from dashboard.accounts import (
    create_user,
    delete_user,
    has_accounts,
    list_accounts,
    set_password,
    set_role,
)
from dashboard.bearer_tokens import create_api_token, list_api_tokens, revoke_api_token
from dashboard.roles import Role, checked_role
from edm.command_helpers import database, print_json, read_password


def create(args: argparse.Namespace, settings: Settings) -> None:
    db = database(settings)
    if args.role is not None:
        role = checked_role(args.role)
    elif not has_accounts(db):
        # The first account must be able to make the others.
        role = Role.ADMIN
    else:
        raise InputError("--role: choose admin, editor or viewer for this account")
    password = read_password(args.password_stdin)
    user = create_user(db, args.email, password, role=role)
    print(f"user {user.email} created as {user.role}: sign in at the dashboard (`edm serve`)")


def list_users(args: argparse.Namespace, settings: Settings) -> None:
    accounts = list_accounts(database(settings))
    if args.json:
        print_json({"users": [asdict(account) for account in accounts]})
        return
    for account in accounts:
        print(f"{account.email}\t{account.role}\tcreated {_when(account.created_at)}")


def delete(args: argparse.Namespace, settings: Settings) -> None:
    user = delete_user(database(settings), args.email)
    print(f"user {user.email} deleted; their browsers are signed out and their tokens revoked")


def role(args: argparse.Namespace, settings: Settings) -> None:
    user = set_role(database(settings), args.email, checked_role(args.role))
    print(f"{user.email} is now {user.role}")


def password(args: argparse.Namespace, settings: Settings) -> None:
    password = read_password(args.password_stdin)
    user = set_password(database(settings), args.email, password, keep_tokens=args.keep_tokens)
    tokens = "kept" if args.keep_tokens else "revoked"
    print(f"password of {user.email} changed; their browsers are signed out, API tokens {tokens}")


def token(args: argparse.Namespace, settings: Settings) -> None:
    print(
        create_api_token(
            database(settings), args.email, name=args.name, expires_days=args.expires_days
        )
    )


def list_tokens(args: argparse.Namespace, settings: Settings) -> None:
    tokens = list_api_tokens(database(settings), args.email)
    if args.json:
        print_json({"tokens": [asdict(token) for token in tokens]})
        return
    for token in tokens:
        print(
            f"{token.id}\t{token.name or '-'}\tcreated {_when(token.created_at)}"
            f"\tlast used {_when(token.last_used_at)}\texpires {_when(token.expires_at)}"
        )


def revoke_token(args: argparse.Namespace, settings: Settings) -> None:
    revoke_api_token(database(settings), args.id)
    print(f"API token {args.id} revoked")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "never"
