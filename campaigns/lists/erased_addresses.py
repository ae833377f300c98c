"""Erased addresses: kept on the suppression list only as a keyed hash.

An erased person's address must leave no trace, yet no import or campaign may mail it again.
The suppression list therefore holds ``erased:`` and the HMAC-SHA256 of the address's key with
the installation's secret key: an import hashes each incoming address the same way to find it,
and someone holding only a copy of the database cannot test guessed addresses against it.
"""

from __future__ import annotations

import hashlib
import hmac

ERASED_PREFIX = "erased:"


def erased_key(secret: bytes, key: str) -> str:
    """The suppression key of an erased address whose ``email_key`` is ``key``."""
    digest = hmac.new(secret, b"erased-address\0" + key.encode(), hashlib.sha256).hexdigest()
    return ERASED_PREFIX + digest


def is_erased_key(key: str) -> bool:
    return key.startswith(ERASED_PREFIX)
