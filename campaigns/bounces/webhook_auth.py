"""Proof that a webhook call comes from the provider: SNS message signatures (Amazon SES),
SendGrid's ECDSA signature, Mailgun's HMAC, Postmark's basic auth or token.

Each check returns a reason when it fails and None when it passes; none of them raises on
malformed input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

CertificateFetcher = Callable[[str], bytes]
"""Gets the PEM certificate at an (already vetted) SigningCertURL."""

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


def is_sns_url(url: str) -> bool:
    """An https URL on an SNS endpoint (``sns.<region>.amazonaws.com``), the only place SNS
    certificates and subscription confirmations may come from."""
    parts = urlsplit(url or "")
    return (
        parts.scheme == "https"
        and bool(_SNS_HOST.match(parts.hostname or ""))
        and (parts.port in (None, 443))
    )


class CachedCertificates:
    """Fetches each signing certificate once (they rotate rarely) with a short timeout."""

    def __init__(self, fetch: CertificateFetcher | None = None) -> None:
        self._fetch = fetch or _fetch_over_https
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        with self._lock:
            if url not in self._certificates:
                self._certificates[url] = x509.load_pem_x509_certificate(self._fetch(url))
            return self._certificates[url]


def _fetch_over_https(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(64 * 1024)


def sns_signature_problem(
    message: Mapping[str, Any], certificates: CachedCertificates
) -> str | None:
    """Why an SNS message's signature is not valid, or None (SignatureVersion 1 and 2)."""
    version = str(message.get("SignatureVersion", ""))
    if version not in _SNS_HASHES:
        return f"unsupported SignatureVersion {version!r}"
    cert_url = str(message.get("SigningCertURL") or message.get("SigningCertUrl") or "")
    if not is_sns_url(cert_url) or not cert_url.endswith(".pem"):
        return f"SigningCertURL {cert_url!r} is not an SNS certificate URL"
    kind = message.get("Type")
    names = _NOTIFICATION_FIELDS if kind == "Notification" else _SUBSCRIPTION_FIELDS
    signed = "".join(
        f"{name}\n{message[name]}\n" for name in names if message.get(name) is not None
    )
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        public_key = certificates.get(cert_url).public_key()
    except (binascii.Error, ValueError, OSError) as error:
        return f"cannot check the signature: {error}"
    if not isinstance(public_key, rsa.RSAPublicKey):
        return "the signing certificate does not hold an RSA key"
    try:
        public_key.verify(signature, signed.encode(), padding.PKCS1v15(), _SNS_HASHES[version]())
    except InvalidSignature:
        return "signature does not match"
    return None


def sendgrid_signature_problem(
    public_key_base64: str, body: bytes, signature_base64: str, timestamp: str
) -> str | None:
    """SendGrid signs the timestamp followed by the raw body with ECDSA P-256 / SHA-256."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key_base64))
        signature = base64.b64decode(signature_base64, validate=True)
    except (binascii.Error, ValueError) as error:
        return f"cannot check the signature: {error}"
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "the configured SendGrid key is not an ECDSA public key"
    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "signature does not match"
    return None


def mailgun_signature_problem(
    signing_key: str, timestamp: str, token: str, signature: str
) -> str | None:
    expected = hmac.new(
        signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        return "signature does not match"
    return None


def postmark_auth_problem(
    *, basic_auth: str, token: str, authorization: str, given_token: str
) -> str | None:
    """Postmark calls the webhook URL you gave it: with ``user:password@`` in it (basic auth)
    or a secret in its query string; one of the configured ones must match."""
    if basic_auth:
        expected = "Basic " + base64.b64encode(basic_auth.encode()).decode()
        if hmac.compare_digest(expected.encode(), authorization.encode()):
            return None
    if token and hmac.compare_digest(token.encode(), given_token.encode()):
        return None
    return "credentials do not match"
