"""Signed, opaque tokens that name a job: in return paths, unsubscribe links and tracking URLs.

A token is the job id in base 32 followed by 16 base-32 characters (80 bits) of HMAC-SHA256 over
the purpose and the job id. The alphabet is lower-case letters and the digits 2-7 only, so a token
is safe in a URL path and in an address local part, and survives an MTA lower-casing the return
path. A token signed for one purpose ("bounce") is worthless for another ("unsubscribe").
The purposes in use are ``campaigns.tracking.routes.TokenPurpose``.

A link token (click tracking) names a job and one of its campaign's links: the job id, the link
id in 13 base-32 digits, and a MAC over both, so a click on one link cannot be turned into a
redirect to another.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_DIGIT_VALUES = {character: value for value, character in enumerate(_ALPHABET)}
_DIGIT_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_MAC_CHARS = 16
_MAC_BYTES = _MAC_CHARS * 5 // 8
_MAC_PAIR_SHIFTS = range(_MAC_BYTES * 8 - 10, -1, -10)
_MAX_JOB_ID = 2**63 - 1
"""Largest id a signed 64-bit database column holds; it takes 13 base-32 digits."""
_MAX_TOKEN_CHARS = 13 + _MAC_CHARS
_LINK_ID_CHARS = 13
_MAX_LINK_ID = 2**63 - 1
_MAX_LINK_TOKEN_CHARS = 13 + _LINK_ID_CHARS + _MAC_CHARS


def sign_job_token(secret: bytes, purpose: str, job_id: int) -> str:
    if not 0 <= job_id <= _MAX_JOB_ID:
        raise ValueError(f"job id out of range: {job_id}")
    return _encode_number(job_id) + _mac(secret, purpose, job_id)


def verify_job_token(secret: bytes, purpose: str, token: str) -> int | None:
    """The job id a token names, or None when it was not signed with ``secret`` for ``purpose``."""
    if not isinstance(token, str) or not _MAC_CHARS < len(token) <= _MAX_TOKEN_CHARS:
        return None
    token = token.lower()
    id_part, mac_part = token[:-_MAC_CHARS], token[-_MAC_CHARS:]
    job_id = _decode_number(id_part)
    if job_id is None or job_id > _MAX_JOB_ID or _encode_number(job_id) != id_part:
        # The last check refuses other spellings of the same number ("aab" for "b").
        return None
    if not hmac.compare_digest(_mac(secret, purpose, job_id), mac_part):
        return None
    return job_id


def sign_link_token(secret: bytes, job_id: int, link_id: int) -> str:
    """A click token: it names the job and the link, and is valid for that pair only."""
    if not 0 <= job_id <= _MAX_JOB_ID:
        raise ValueError(f"job id out of range: {job_id}")
    if not 0 <= link_id <= _MAX_LINK_ID:
        raise ValueError(f"link id out of range: {link_id}")
    link_digits = _encode_number(link_id).rjust(_LINK_ID_CHARS, _ALPHABET[0])
    return _encode_number(job_id) + link_digits + _link_mac(secret, job_id, link_id)


def verify_link_token(secret: bytes, token: str) -> tuple[int, int] | None:
    """``(job id, link id)`` of a click token, or None when ``secret`` did not sign it."""
    minimum = _LINK_ID_CHARS + _MAC_CHARS
    if not isinstance(token, str) or not minimum < len(token) <= _MAX_LINK_TOKEN_CHARS:
        return None
    token = token.lower()
    id_part, link_part, mac_part = (
        token[:-minimum],
        token[-minimum:-_MAC_CHARS],
        token[-_MAC_CHARS:],
    )
    job_id = _decode_number(id_part)
    link_id = _decode_number(link_part)
    if job_id is None or link_id is None or job_id > _MAX_JOB_ID or link_id > _MAX_LINK_ID:
        return None
    if _encode_number(job_id) != id_part:
        return None
    if not hmac.compare_digest(_link_mac(secret, job_id, link_id), mac_part):
        return None
    return job_id, link_id


def _mac(secret: bytes, purpose: str, job_id: int) -> str:
    # With its length in front, no purpose can run on into the job id: every (purpose, id) pair
    # signs a different message.
    purpose_bytes = purpose.encode()
    message = b"edm-job-token:%d:%s:%d" % (len(purpose_bytes), purpose_bytes, job_id)
    return _mac_digits(secret, message)


def _link_mac(secret: bytes, job_id: int, link_id: int) -> str:
    # Its own prefix: no job token's message can equal a link token's.
    return _mac_digits(secret, b"edm-link-token:%d:%d" % (job_id, link_id))


@functools.lru_cache(maxsize=8)
def _keyed_mac(secret: bytes) -> hmac.HMAC:
    return hmac.new(secret, digestmod=hashlib.sha256)


def _mac_digits(secret: bytes, message: bytes) -> str:
    # Keying HMAC hashes the padded secret twice; a message signs a dozen tokens with one secret,
    # so the keyed state is made once and copied (a third off every token).
    mac = _keyed_mac(secret).copy()
    mac.update(message)
    digest = mac.digest()[:_MAC_BYTES]
    number = int.from_bytes(digest, "big")
    return "".join([_DIGIT_PAIRS[(number >> shift) & 1023] for shift in _MAC_PAIR_SHIFTS])


def _encode_number(number: int) -> str:
    # Two digits (10 bits) a step: tracking links encode numbers for every link of every
    # message, and this takes half the time of one digit a step.
    if number < 32:
        return _ALPHABET[number]
    pairs = []
    while number:
        number, remainder = divmod(number, 1024)
        pairs.append(_DIGIT_PAIRS[remainder])
    digits = "".join(reversed(pairs))
    return digits[1:] if digits[0] == _ALPHABET[0] else digits


def _decode_number(text: str) -> int | None:
    number = 0
    for character in text:
        value = _DIGIT_VALUES.get(character)
        if value is None:
            return None
        number = number * 32 + value
    return number
