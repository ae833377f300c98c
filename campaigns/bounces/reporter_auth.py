"""Who sent an abuse report: the domains whose DKIM signatures on it verify.

A complaint that names no message of ours by its signed Message-ID counts only when a mailbox
provider we trust sent it (``EDM_COMPLAINT_REPORTER_DOMAINS``); a From or envelope sender says
nothing, anyone can write them, so the proof is a DKIM signature by that domain. This runs inside
the bounded reading (:mod:`campaigns.bounces.isolated_reading`): DKIM canonicalization runs
regexes over the whole message, and the key is fetched from DNS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints

log = logging.getLogger(__name__)

DnsTxtLookup = Callable[..., bytes | None]
"""dkimpy's ``dnsfunc``: ``lookup(name, timeout=5)`` gives the TXT record's text."""

MAX_SIGNED_BYTES = 1024 * 1024
"""A larger report is not checked: a provider's report returns one campaign message."""
MAX_SIGNATURES = 3
MAX_SIGNATURE_CHARS = 4096
DNS_TIMEOUT_S = 5


def dkim_signing_domains(raw: bytes, *, dns: DnsTxtLookup | None = None) -> tuple[str, ...]:
    """The ``d=`` domains, lower-cased, of the DKIM signatures on ``raw`` that verify."""
    if len(raw) > MAX_SIGNED_BYTES:
        return ()
    try:
        checker = dkim.DKIM(raw, timeout=DNS_TIMEOUT_S)
        signatures = [value for name, value in checker.headers if name.lower() == b"dkim-signature"]
        domains: list[str] = []
        for index, signature in enumerate(signatures[:MAX_SIGNATURES]):
            # dkimpy splits the h= tag with a regex that is slow on long runs of spaces.
            if len(signature) > MAX_SIGNATURE_CHARS:
                continue
            verified = checker.verify(idx=index, dnsfunc=dns) if dns else checker.verify(idx=index)
            if verified and checker.domain:
                domains.append(checker.domain.decode("ascii", "replace").lower())
        return tuple(domains)
    except Exception as error:
        log.info("DKIM signatures of a report cannot be checked: %r", error)
        return ()


def is_from_reporter(signing_domains: Iterable[str], reporter_domains: Iterable[str]) -> bool:
    """A signing domain that is a reporter domain or one of its subdomains."""
    reporters = [domain.strip().lower().rstrip(".") for domain in reporter_domains]
    return any(
        signer == reporter or signer.endswith(f".{reporter}")
        for signer in signing_domains
        for reporter in reporters
        if reporter
    )
