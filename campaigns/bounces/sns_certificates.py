"""SNS signing certificates: where they may come from, who they must name, and a bounded cache.

A certificate URL must be https on a regional SNS host (``sns.<region>.amazonaws.com``, or
``sns.cn-<region>.amazonaws.com.cn`` in the China partition) with a path ending ``.pem``; its
certificate's common name must be ``sns.amazonaws.com`` (in the China partition, that or the
host itself).
Fetches of different URLs run side by side; callers wanting a URL being fetched wait for that
one fetch. A failure is remembered for ``failure_ttl_s`` so a flood of messages naming a bad URL
causes one fetch, not one each.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

CertificateFetcher = Callable[[str], bytes]
"""Gets the PEM certificate at an (already vetted) SigningCertURL."""

SNS_CERTIFICATE_NAME = "sns.amazonaws.com"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
_SNS_HOST = re.compile(
    rf"sns\.(?:{_REGION}\.amazonaws\.com|cn-[a-z]+-\d{{1,2}}\.amazonaws\.com\.cn)"
)
_MAX_CERTIFICATE_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 10.0


class CertificateUnavailable(ValueError):
    """The certificate at a URL could not be fetched, read or trusted (now or recently)."""


def is_sns_url(url: str) -> bool:
    """An https URL on a regional SNS endpoint, the only place SNS certificates and
    subscription confirmations may come from."""
    parts = urlsplit(url or "")
    return (
        parts.scheme == "https"
        and bool(_SNS_HOST.fullmatch(parts.hostname or ""))
        and parts.port in (None, 443)
        and not parts.username
        and not parts.password
    )


def is_sns_certificate_url(url: str) -> bool:
    return is_sns_url(url) and urlsplit(url).path.endswith(".pem")


@dataclass(frozen=True)
class _Failure:
    reason: str
    until_s: float


class SnsCertificates:
    """Vetted SNS certificates by URL: at most ``max_entries`` of them, least recently used
    dropped first, failures remembered for ``failure_ttl_s``."""

    def __init__(
        self,
        fetch: CertificateFetcher | None = None,
        *,
        max_entries: int = 64,
        failure_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch or _fetch_over_https
        self._max_entries = max_entries
        self._failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, x509.Certificate | _Failure] = OrderedDict()
        self._in_flight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        """The certificate at ``url``; raises :class:`CertificateUnavailable`."""
        if not is_sns_certificate_url(url):
            raise CertificateUnavailable(f"{url!r} is not an SNS certificate URL")
        while True:
            with self._lock:
                cached = self._cached(url)
                if cached is None:
                    in_flight = self._in_flight.get(url)
                    if in_flight is None:
                        self._in_flight[url] = threading.Event()
                        break
            if cached is not None:
                return _certificate_or_raise(url, cached)
            if in_flight is not None:
                in_flight.wait(FETCH_TIMEOUT_S * 2)
        entry: x509.Certificate | _Failure = _Failure(
            f"{url}: the fetch failed", self._clock() + self._failure_ttl_s
        )
        try:
            entry = _trusted(url, self._fetch(url))
        except (OSError, ValueError) as error:
            entry = _Failure(f"{url}: {error}", self._clock() + self._failure_ttl_s)
        finally:
            # Also after an unexpected error: waiters must never wait on a fetch that is over.
            with self._lock:
                self._entries[url] = entry
                self._entries.move_to_end(url)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
                self._in_flight.pop(url).set()
        return _certificate_or_raise(url, entry)

    def _cached(self, url: str) -> x509.Certificate | _Failure | None:
        entry = self._entries.get(url)
        if isinstance(entry, _Failure) and entry.until_s <= self._clock():
            del self._entries[url]
            return None
        if entry is not None:
            self._entries.move_to_end(url)
        return entry


def _certificate_or_raise(url: str, entry: x509.Certificate | _Failure) -> x509.Certificate:
    if isinstance(entry, _Failure):
        raise CertificateUnavailable(entry.reason)
    return entry


def _trusted(url: str, pem: bytes) -> x509.Certificate:
    certificate = x509.load_pem_x509_certificate(pem)
    names = [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    host = urlsplit(url).hostname or ""
    expected = {SNS_CERTIFICATE_NAME, host} if host.endswith(".cn") else {SNS_CERTIFICATE_NAME}
    if len(names) != 1 or names[0] not in expected:
        raise ValueError(f"certificate names {names}, not {SNS_CERTIFICATE_NAME}")
    return certificate


def _fetch_over_https(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
        return response.read(_MAX_CERTIFICATE_BYTES)
