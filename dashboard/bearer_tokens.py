"""API tokens: bearer secrets for scripts (``edm users token``), each with a name, an optional
expiry and the time it was last used. Only a token's SHA-256 is kept; revoking deletes it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from campaigns.core.errors import InputError, NotFound
from campaigns.core.models import ApiToken, DashboardUser, utc_now
from campaigns.core.storage import Database, rows_matched
from dashboard.accounts import (
    SESSION_RENEW_AFTER,
    SignedIn,
    User,
    token_hash,
    user_by_email,
)
from dashboard.roles import Role

API_TOKEN_PREFIX = "edm_"
MAX_TOKEN_NAME_CHARS = 100
MAX_EXPIRES_DAYS = 3650


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the secret, which only its maker saw."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


def create_api_token(
    database: Database, email: str, *, name: str = "", expires_days: float | None = None
) -> str:
    """A new bearer token for the user; shown once, only its hash is kept."""
    name = _checked_name(name)
    now = utc_now()
    expires_at = None
    if expires_days is not None:
        if not 0 < expires_days <= MAX_EXPIRES_DAYS:
            raise InputError(
                f"--expires-days: between 0 and {MAX_EXPIRES_DAYS} days, got {expires_days:g}"
            )
        expires_at = now + timedelta(days=expires_days)
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with database.session() as session:
        user = user_by_email(session, email)
        session.add(
            ApiToken(
                token_hash=token_hash(token),
                user_id=user.id,
                name=name,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return token


def list_api_tokens(database: Database, email: str) -> list[TokenInfo]:
    with database.session() as session:
        user = user_by_email(session, email)
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        )
        return [
            TokenInfo(row.id, row.name, row.created_at, row.last_used_at, row.expires_at)
            for row in rows
        ]


def revoke_api_token(database: Database, token_id: int) -> None:
    with database.session() as session:
        gone = rows_matched(session.execute(delete(ApiToken).where(ApiToken.id == token_id)))
    if not gone:
        raise NotFound(f"ID: no API token {token_id} (`edm users tokens list --email E`)")


def token_user(database: Database, token: str) -> SignedIn | None:
    """Who holds this token; None when it is unknown, revoked or expired."""
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    hashed = token_hash(token)
    with database.session() as session:
        row = session.execute(
            select(
                ApiToken.id,
                ApiToken.last_used_at,
                ApiToken.expires_at,
                DashboardUser.id,
                DashboardUser.email,
                DashboardUser.role,
            )
            .join(DashboardUser, DashboardUser.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hashed)
        ).first()
        if row is None:
            return None
        token_id, last_used_at, expires_at, user_id, email, role = row
        now = utc_now()
        if expires_at is not None and expires_at <= now:
            return None
        if last_used_at is None or now - last_used_at > SESSION_RENEW_AFTER:
            session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
        return SignedIn(User(user_id, email, Role(role)), None)


def _checked_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_TOKEN_NAME_CHARS:
        raise InputError(f"--name: at most {MAX_TOKEN_NAME_CHARS} characters")
    if any(not character.isprintable() for character in name):
        raise InputError("--name: printable characters only")
    return name
