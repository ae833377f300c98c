"""``edm users smtp-credentials``: logins of applications that submit mail by SMTP."""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.transactional.smtp_credentials import (
    create_smtp_credential,
    list_smtp_credentials,
    revoke_smtp_credential,
)
from edm.command_helpers import database, print_json

_RATE = re.compile(r"([0-9]{1,9})/min")


def create(args: argparse.Namespace, settings: Settings) -> None:
    domains = [domain for domain in args.allowed_domains.split(",") if domain.strip()]
    credential, password = create_smtp_credential(
        database(settings),
        args.email,
        allowed_domains=domains,
        rate_per_minute=rate_per_minute(args.rate),
    )
    print(f"SMTP credential {credential.id} for {credential.email}")
    print(f"sender domains: {', '.join(credential.allowed_domains)}")
    print(f"password (shown this once, only its hash is kept): {password}")


def rate_per_minute(text: str | None) -> int | None:
    if text is None:
        return None
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise InputError(f"--rate: {text[:40]!r}: expected N/min, like 60/min")
    return int(match.group(1))


def list_credentials(args: argparse.Namespace, settings: Settings) -> None:
    credentials = list_smtp_credentials(database(settings))
    if args.json:
        print_json({"smtp_credentials": [asdict(credential) for credential in credentials]})
        return
    for credential in credentials:
        rate = f"{credential.rate_per_minute}/min" if credential.rate_per_minute else "no rate"
        state = "revoked" if credential.revoked_at else "active"
        print(
            f"{credential.id}\t{credential.email}\t{','.join(credential.allowed_domains)}"
            f"\t{rate}\t{state}\tcreated {credential.created_at:%Y-%m-%d %H:%M UTC}"
        )


def revoke(args: argparse.Namespace, settings: Settings) -> None:
    credential = revoke_smtp_credential(database(settings), args.id)
    print(f"SMTP credential {credential.id} ({credential.email}) revoked")
