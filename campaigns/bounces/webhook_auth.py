"""Proof that a webhook call comes from the provider: SNS message signatures (Amazon SES),
SendGrid's ECDSA signature, Mailgun's HMAC, Postmark's basic auth or token.

Each check returns a reason when it fails and None when it passes; none of them raises on
malformed input. Signatures prove who sent a payload; its timestamp (:func:`timestamp_problem`)
and, for Mailgun, its token (:class:`SeenTokens`) keep a captured one from being replayed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from campaigns.bounces.sns_certificates import SnsCertificates, is_sns_certificate_url

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
SIGNED_PAYLOAD_MAX_AGE_S = 300.0
"""A signed payload further than this from now, either way, is refused: a captured one is
worth something for this long only."""


def timestamp_problem(timestamp: str, now_s: float) -> str | None:
    """Why a signed payload's timestamp (Unix seconds or ISO 8601) is not fresh, or None."""
    try:
        signed_s = float(timestamp)
    except ValueError:
        try:
            signed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            return f"timestamp {timestamp[:40]!r} is not a time"
        signed_s = (signed if signed.tzinfo else signed.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(signed_s) or abs(now_s - signed_s) > SIGNED_PAYLOAD_MAX_AGE_S:
        return f"timestamp {timestamp[:40]!r} is more than 5 minutes from now"
    return None


class SeenTokens:
    """Tokens of signed payloads accepted within the last ``SIGNED_PAYLOAD_MAX_AGE_S``, so a
    payload is accepted once. In memory, per process, at most ``max_entries`` (the oldest go
    first)."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._expiry_s: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, token: str, now_s: float) -> bool:
        """True the first time ``token`` is seen in its window; remembers it."""
        with self._lock:
            while self._expiry_s and next(iter(self._expiry_s.values())) <= now_s:
                self._expiry_s.popitem(last=False)
            if token in self._expiry_s:
                return False
            self._expiry_s[token] = now_s + 2 * SIGNED_PAYLOAD_MAX_AGE_S
            while len(self._expiry_s) > self._max_entries:
                self._expiry_s.popitem(last=False)
            return True


def sns_signature_problem(message: Mapping[str, Any], certificates: SnsCertificates) -> str | None:
    """Why an SNS message's signature is not valid, or None (SignatureVersion 1 and 2)."""
    version = str(message.get("SignatureVersion", ""))
    if version not in _SNS_HASHES:
        return f"unsupported SignatureVersion {version!r}"
    cert_url = str(message.get("SigningCertURL") or message.get("SigningCertUrl") or "")
    if not is_sns_certificate_url(cert_url):
        return f"SigningCertURL {cert_url!r} is not an SNS certificate URL"
    kind = message.get("Type")
    names = _NOTIFICATION_FIELDS if kind == "Notification" else _SUBSCRIPTION_FIELDS
    signed = "".join(
        f"{name}\n{message[name]}\n" for name in names if message.get(name) is not None
    )
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        public_key = certificates.get(cert_url).public_key()
    except (binascii.Error, ValueError) as error:
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
