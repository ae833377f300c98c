"""The signature a receiver checks: HMAC-SHA256 over ``timestamp + "." + body``.

The timestamp is signed with the body, so a receiver that refuses old timestamps cannot be
made to accept a captured request again later.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TIMESTAMP_HEADER = "EDM-Webhook-Timestamp"
"""Unix time in whole seconds, as decimal digits."""
SIGNATURE_HEADER = "EDM-Webhook-Signature"
"""``v1=`` and the hex HMAC-SHA256; the version leaves room for another scheme later."""
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of ``SIGNATURE_HEADER`` for this body sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
