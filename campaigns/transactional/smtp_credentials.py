"""Logins for SMTP submission: an application's address, a generated password, the sender
domains it may use and its own rate.

The password is a random secret handed out once and only its SHA-256 is stored, as API tokens
are: a copy of the database lets nobody send, and a login is found through the hash, so a wrong
password and an unknown login cost the same one query and get the same answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from campaigns.core.errors import InputError, NotFound, StateError
from campaigns.core.models import SmtpCredential, utc_now
from campaigns.core.storage import Database
from campaigns.lists.fields import email_key, normalise_email

MAX_LOGIN_CHARS = 320
MAX_PASSWORD_CHARS = 200
MAX_ALLOWED_DOMAINS = 50


@dataclass(frozen=True)
class SmtpLogin:
    """A credential as the submission server holds it for a signed-in connection."""

    id: int
    email: str
    allowed_domains: tuple[str, ...]
    rate_per_minute: int | None

    def may_send_as(self, address: str) -> bool:
        """True when ``address`` (as given in MAIL FROM or From) is at an allowed domain."""
        _, at, domain = address.rpartition("@")
        return bool(at) and domain.lower().rstrip(".") in self.allowed_domains


@dataclass(frozen=True)
class CredentialListing:
    id: int
    email: str
    allowed_domains: list[str]
    rate_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8", "surrogateescape")).hexdigest()


def create_smtp_credential(
    database: Database,
    email: str,
    *,
    allowed_domains: Sequence[str] = (),
    rate_per_minute: int | None = None,
) -> tuple[CredentialListing, str]:
    """The new credential and its password, which is shown this once and never stored."""
    try:
        login = email_key(normalise_email(email))
    except InputError as error:
        raise InputError(f"--email: {email[:80]!r}: {error}") from None
    domains = checked_domains(allowed_domains) or [login.rsplit("@", 1)[1]]
    if rate_per_minute is not None and rate_per_minute < 1:
        raise InputError(f"--rate: at least 1 a minute, got {rate_per_minute}")
    password = secrets.token_urlsafe(24)
    with database.session() as session:
        row = SmtpCredential(
            email=login,
            password_hash=password_hash(password),
            allowed_domains=domains,
            rate_per_minute=rate_per_minute,
            created_at=utc_now(),
        )
        session.add(row)
        session.flush()
        return _listing(row), password


def checked_domains(domains: Sequence[str]) -> list[str]:
    if len(domains) > MAX_ALLOWED_DOMAINS:
        raise InputError(f"--allowed-domains: {MAX_ALLOWED_DOMAINS} at most")
    checked: list[str] = []
    for given in domains:
        domain = given.strip().lower().rstrip(".")
        try:
            # The address check is the project's one domain check.
            normalise_email(f"a@{domain}")
        except InputError as error:
            raise InputError(f"--allowed-domains: {given[:80]!r}: {error}") from None
        if domain not in checked:
            checked.append(domain)
    return checked


def list_smtp_credentials(database: Database) -> list[CredentialListing]:
    with database.session() as session:
        rows = session.scalars(select(SmtpCredential).order_by(SmtpCredential.id))
        return [_listing(row) for row in rows]


def revoke_smtp_credential(database: Database, credential_id: int) -> CredentialListing:
    with database.session() as session:
        row = session.get(SmtpCredential, credential_id)
        if row is None:
            raise NotFound(f"SMTP credential {credential_id} not found")
        if row.revoked_at is not None:
            raise StateError(f"SMTP credential {credential_id} is revoked already")
        row.revoked_at = utc_now()
        return _listing(row)


def verify_smtp_login(database: Database, login: str, password: str) -> SmtpLogin | None:
    """The credential these match, or None whatever was wrong (login, password, revoked)."""
    if len(login) > MAX_LOGIN_CHARS or len(password) > MAX_PASSWORD_CHARS:
        return None
    with database.session() as session:
        row = session.scalar(
            select(SmtpCredential).where(
                SmtpCredential.password_hash == password_hash(password),
                SmtpCredential.revoked_at.is_(None),
            )
        )
        stored_login = row.email if row is not None else ""
        if row is None or not hmac.compare_digest(
            stored_login.encode(), login.strip().lower().encode("utf-8", "surrogateescape")
        ):
            return None
        return SmtpLogin(
            id=row.id,
            email=row.email,
            allowed_domains=tuple(row.allowed_domains),
            rate_per_minute=row.rate_per_minute,
        )


def _listing(row: SmtpCredential) -> CredentialListing:
    return CredentialListing(
        id=row.id,
        email=row.email,
        allowed_domains=list(row.allowed_domains),
        rate_per_minute=row.rate_per_minute,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
