"""Which From domains a test message from the dashboard may use.

A test send puts any From the editor types on mail that leaves through the relay, with this
installation's return path and DKIM signature: without a limit, a dashboard account could send
mail that appears to come from anyone. The domains are ``EDM_SENDER_DOMAINS``; when it is empty
they are ``EDM_DKIM_DOMAIN`` (the domain this installation signs for), and with neither set,
test sends are refused until one is configured. A domain matches exactly: a subdomain must be
listed itself.
"""

from __future__ import annotations

from campaigns.content.message import sender_domain_of
from campaigns.core.errors import InputError
from campaigns.core.settings import Settings


def allowed_sender_domains(settings: Settings) -> frozenset[str]:
    configured = settings.sender_domains or settings.dkim_domain
    return frozenset(
        _ascii_domain(domain) for domain in configured.split(",") if domain.strip(" .")
    )


def check_test_sender(settings: Settings, from_address: str, *, field: str) -> None:
    allowed = allowed_sender_domains(settings)
    if not allowed:
        raise InputError(
            f"{field}: test messages are off until EDM_SENDER_DOMAINS (or EDM_DKIM_DOMAIN) "
            "names the domains you send from"
        )
    try:
        domain = sender_domain_of(from_address)
    except InputError as error:
        raise InputError(f"{field}: {error}") from None
    if domain not in allowed:
        raise InputError(
            f"{field}: {domain} is not a sender domain of this installation "
            f"(EDM_SENDER_DOMAINS: {', '.join(sorted(allowed))})"
        )


def _ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise InputError(f"EDM_SENDER_DOMAINS: {domain!r} is not a valid domain") from None
