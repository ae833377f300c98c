"""Upgrading a database made before roles: its accounts become admins, its API tokens keep
working (unnamed, never expiring), and new accounts must name their role."""

from __future__ import annotations

import pytest
from alembic import command as alembic_command
from alembic.config import Config
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from campaigns.core.storage import MIGRATIONS_DIR, Database
from dashboard.accounts import authenticate, list_accounts, token_hash
from dashboard.bearer_tokens import list_api_tokens, token_user
from dashboard.roles import Role

OLD_TOKEN = "edm_made-before-roles"


def test_an_account_from_before_roles_is_an_admin_and_keeps_its_token(database_url: str) -> None:
    database = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with database.engine.connect() as connection:
            config.attributes["connection"] = connection
            alembic_command.upgrade(config, "0007_campaign_relays")
            connection.execute(
                text(
                    "INSERT INTO dashboard_users (id, email, password_hash, created_at)"
                    " VALUES (1, 'old@example.com', :hash, CURRENT_TIMESTAMP)"
                ),
                {"hash": PasswordHasher().hash("an old long password")},
            )
            connection.execute(
                text(
                    "INSERT INTO api_tokens (id, token_hash, user_id, created_at)"
                    " VALUES (1, :hash, 1, CURRENT_TIMESTAMP)"
                ),
                {"hash": token_hash(OLD_TOKEN)},
            )
            connection.commit()

        database.upgrade()

        [account] = list_accounts(database)
        assert (account.email, account.role) == ("old@example.com", Role.ADMIN)
        signed_in = authenticate(database, "old@example.com", "an old long password")
        assert signed_in is not None and signed_in.role == Role.ADMIN
        found = token_user(database, OLD_TOKEN)
        assert found is not None and found.user.role == Role.ADMIN
        [token] = list_api_tokens(database, "old@example.com")
        assert (token.name, token.expires_at) == ("", None)
        assert token.last_used_at is not None

        if not database_url.startswith("sqlite"):
            # Only SQLite keeps the upgrade's default: elsewhere a new account names its role.
            with database.engine.connect() as connection, pytest.raises(IntegrityError):
                connection.execute(
                    text(
                        "INSERT INTO dashboard_users (email, password_hash, created_at)"
                        " VALUES ('new@example.com', 'x', CURRENT_TIMESTAMP)"
                    )
                )
    finally:
        database.dispose()
