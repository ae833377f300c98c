"""Dashboard accounts: users with a role and an argon2 password hash, and their browser sessions.

Sessions (and API tokens, ``dashboard.bearer_tokens``) are random secrets handed out once; only
their SHA-256 is stored, so a copy of the database signs nobody in. Every lookup goes through the
hash, which also makes the comparison independent of how much of a guessed token is right.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from campaigns.core.errors import InputError, NotFound
from campaigns.core.models import ApiToken, DashboardSession, DashboardUser, utc_now
from campaigns.core.storage import Database
from campaigns.lists.fields import email_key, normalise_email
from dashboard.password_rules import MAX_PASSWORD_CHARS, check_password
from dashboard.roles import Role

SESSION_LIFETIME = timedelta(days=7)
"""A session unused this long signs its browser out; each use extends it."""
SESSION_RENEW_AFTER = timedelta(hours=1)
"""Extending a session is a write: done at most this often per session."""

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
    role: Role


@dataclass(frozen=True)
class Account:
    """A user as ``edm users list`` and the accounts API show one."""

    id: int
    email: str
    role: Role
    created_at: datetime


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


def user_of(row: DashboardUser) -> User:
    return User(row.id, row.email, Role(row.role))


def has_accounts(database: Database) -> bool:
    with database.session() as session:
        return session.scalar(select(DashboardUser.id).limit(1)) is not None


def create_user(
    database: Database,
    email: str,
    password: str,
    *,
    role: Role,
    hasher: PasswordHasher = PASSWORD_HASHER,
) -> User:
    address = checked_email(email)
    check_password(password)
    with database.session() as session:
        exists = session.scalar(select(DashboardUser.id).where(DashboardUser.email == address))
        if exists is not None:
            raise InputError(f"--email: a user {address} already exists")
        user = DashboardUser(email=address, password_hash=hasher.hash(password), role=role)
        session.add(user)
        session.flush()
        return user_of(user)


def list_accounts(database: Database) -> list[Account]:
    with database.session() as session:
        rows = session.scalars(select(DashboardUser).order_by(DashboardUser.email))
        return [_account_of(row) for row in rows]


def find_account(database: Database, email: str) -> Account:
    with database.session() as session:
        return _account_of(user_by_email(session, email))


def _account_of(row: DashboardUser) -> Account:
    return Account(row.id, row.email, Role(row.role), row.created_at)


def set_password(
    database: Database,
    email: str,
    password: str,
    *,
    keep_tokens: bool = False,
    hasher: PasswordHasher = PASSWORD_HASHER,
) -> User:
    """A new password signs out every browser that knew the old one and, unless
    ``keep_tokens``, revokes the user's API tokens (whoever took the password may have made one)."""
    address = checked_email(email)
    check_password(password)
    with database.session() as session:
        user = _user_by_email(session, address)
        user.password_hash = hasher.hash(password)
        session.execute(delete(DashboardSession).where(DashboardSession.user_id == user.id))
        if not keep_tokens:
            session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
        return user_of(user)


def set_role(database: Database, email: str, role: Role) -> User:
    address = checked_email(email)
    with database.session() as session:
        user = _user_by_email(session, address)
        if role != Role.ADMIN:
            _keep_an_admin(session, user, "--role")
        user.role = role
        return user_of(user)


def delete_user(database: Database, email: str) -> User:
    """The account goes, and with it every session and API token it had."""
    address = checked_email(email)
    with database.session() as session:
        user = _user_by_email(session, address)
        _keep_an_admin(session, user, "--email")
        gone = user_of(user)
        session.execute(delete(DashboardSession).where(DashboardSession.user_id == user.id))
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
        session.delete(user)
        return gone


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
        return user_of(user)


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
        return SignedIn(user_of(user), stored.csrf_token, hashed)


def end_session(database: Database, session_hash: str) -> None:
    with database.session() as session:
        session.execute(delete(DashboardSession).where(DashboardSession.token_hash == session_hash))


def user_by_email(session: Session, email: str) -> DashboardUser:
    return _user_by_email(session, checked_email(email))


def _user_by_email(session: Session, address: str) -> DashboardUser:
    user = session.scalar(select(DashboardUser).where(DashboardUser.email == address))
    if user is None:
        raise NotFound(f"--email: user {address} not found (create one with `edm users create`)")
    return user


def _keep_an_admin(session: Session, user: DashboardUser, field: str) -> None:
    """Without an admin nobody could manage accounts from the dashboard or API again."""
    if user.role != Role.ADMIN:
        return
    admins = session.scalar(
        select(func.count()).select_from(DashboardUser).where(DashboardUser.role == Role.ADMIN)
    )
    if (admins or 0) <= 1:
        raise InputError(f"{field}: {user.email} is the only admin: make another admin first")
