"""The domain blocklist (``EDM_BLOCKED_DOMAINS``): domains no import takes and no message goes to.

A domain covers its subdomains: blocking ``example.com`` blocks ``mail.example.com`` too.
"""

from __future__ import annotations


def blocked_domain(address: str, blocked: frozenset[str]) -> str | None:
    """The blocked domain that covers ``address``, or None."""
    if not blocked:
        return None
    domain = address.rpartition("@")[2].lower().rstrip(".")
    while domain:
        if domain in blocked:
            return domain
        domain = domain.partition(".")[2]
    return None
