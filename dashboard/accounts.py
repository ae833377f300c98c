"""Dashboard accounts: users with argon2 password hashes, browser sessions and API tokens.

Sessions and API tokens are random secrets handed out once; only their SHA-256 is stored, so a
copy of the database signs nobody in. Every lookup goes through the hash, which also makes the
comparison independent of how much of a guessed token is right.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from campaigns.core.errors import InputError, NotFound
from campaigns.core.models import ApiToken, DashboardSession, DashboardUser, utc_now
from campaigns.core.storage import Database
from campaigns.lists.fields import email_key, normalise_email

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
SESSION_LIFETIME = timedelta(days=7)
"""A session unused this long signs its browser out; each use extends it."""
SESSION_RENEW_AFTER = timedelta(hours=1)
"""Extending a session is a write: done at most this often per session."""
API_TOKEN_PREFIX = "edm_"

PASSWORD_HASHER = PasswordHasher()
"""argon2id at its library's defaults: the cost every deployment pays per sign-in."""


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Verifying against this when the address is unknown makes a wrong address take as long as a
    # wrong password, so timing does not tell which addresses have accounts.
    return hasher.hash(secrets.token_hex(16))


_dummy_hash(PASSWORD_HASHER)


@dataclass(frozen=True)
class User:
    id: int
    email: str


@dataclass(frozen=True)
class SignedIn:
    """Who made a request, and the session's CSRF token (None for a bearer token)."""

    user: User
    csrf_token: str | None
    session_hash: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def checked_email(email: str) -> str:
    """The address as accounts are keyed: normalised, lower-cased (people type it either way)."""
    try:
        return email_key(normalise_email(email))
    except InputError as error:
        raise InputError(f"--email: {email[:80]!r}: {error}") from None


def create_user(
    database: Database, email: str, password: str, *, hasher: PasswordHasher = PASSWORD_HASHER
) -> User:
    address = checked_email(email)
    _check_password(password)
    with database.session() as session:
        exists = session.scalar(select(DashboardUser.id).where(DashboardUser.email == address))
        if exists is not None:
            raise InputError(f"--email: a user {address} already exists")
        user = DashboardUser(email=address, password_hash=hasher.hash(password))
        session.add(user)
        session.flush()
        return User(user.id, user.email)


def set_password(database: Database, email: str, password: str) -> User:
    address = checked_email(email)
    _check_password(password)
    with database.session() as session:
        user = _user_by_email(session, address)
        user.password_hash = PASSWORD_HASHER.hash(password)
        # A new password signs out every browser that knew the old one.
        session.execute(delete(DashboardSession).where(DashboardSession.user_id == user.id))
        return User(user.id, user.email)


def authenticate(
    database: Database, email: str, password: str, *, hasher: PasswordHasher = PASSWORD_HASHER
) -> User | None:
    """The user whose address and password these are, else None (never says which was wrong)."""
    try:
        address = email_key(normalise_email(email))
    except InputError:
        address = ""
    with database.session() as session:
        user = session.scalar(select(DashboardUser).where(DashboardUser.email == address))
        stored = user.password_hash if user is not None else _dummy_hash(hasher)
        try:
            hasher.verify(stored, password[:MAX_PASSWORD_CHARS])
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
        return User(user.id, user.email)


def start_session(database: Database, user: User) -> tuple[str, str]:
    """A new session for ``user``: (the cookie's token, the session's CSRF token)."""
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    now = utc_now()
    with database.session() as session:
        # Sessions that ran out are removed as new ones start: no separate sweeper is needed.
        session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
        session.add(
            DashboardSession(
                token_hash=token_hash(token),
                user_id=user.id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
        )
    return token, csrf_token


def session_user(database: Database, token: str) -> SignedIn | None:
    """Who holds this session cookie, extending the session; None when unknown or expired."""
    if not token or len(token) > 200:
        return None
    hashed = token_hash(token)
    now = utc_now()
    with database.session() as session:
        row = session.execute(
            select(DashboardSession, DashboardUser)
            .join(DashboardUser, DashboardUser.id == DashboardSession.user_id)
            .where(DashboardSession.token_hash == hashed)
        ).first()
        if row is None:
            return None
        stored, user = row
        if stored.expires_at <= now:
            return None
        if stored.expires_at - SESSION_LIFETIME + SESSION_RENEW_AFTER <= now:
            stored.expires_at = now + SESSION_LIFETIME
        return SignedIn(User(user.id, user.email), stored.csrf_token, hashed)


def end_session(database: Database, session_hash: str) -> None:
    with database.session() as session:
        session.execute(delete(DashboardSession).where(DashboardSession.token_hash == session_hash))


def create_api_token(database: Database, email: str) -> str:
    """A new bearer token for the user; shown once, only its hash is kept."""
    address = checked_email(email)
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with database.session() as session:
        user = _user_by_email(session, address)
        session.add(ApiToken(token_hash=token_hash(token), user_id=user.id))
    return token


def token_user(database: Database, token: str) -> SignedIn | None:
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    hashed = token_hash(token)
    with database.session() as session:
        row = session.execute(
            select(ApiToken.id, ApiToken.last_used_at, DashboardUser.id, DashboardUser.email)
            .join(DashboardUser, DashboardUser.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hashed)
        ).first()
        if row is None:
            return None
        token_id, last_used_at, user_id, email = row
        now = utc_now()
        if _stale(last_used_at, now):
            session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
        return SignedIn(User(user_id, email), None)


def _stale(moment: datetime | None, now: datetime) -> bool:
    return moment is None or now - moment > SESSION_RENEW_AFTER


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"password: at least {MIN_PASSWORD_CHARS} characters, please")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"password: at most {MAX_PASSWORD_CHARS} characters")


def _user_by_email(session: Session, address: str) -> DashboardUser:
    user = session.scalar(select(DashboardUser).where(DashboardUser.email == address))
    if user is None:
        raise NotFound(f"user {address} not found (create one with `edm users create`)")
    return user
