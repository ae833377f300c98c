"""DKIM signatures (RFC 6376) over the exact bytes sent: rsa-sha256 and ed25519-sha256 (RFC 8463).

Signing goes through ``cryptography`` (OpenSSL): an RSA-2048 signature costs well under a
millisecond there, against about 9 ms in dkimpy's pure-Python RSA. Canonicalisation is
relaxed/relaxed, which survives the re-folding and whitespace changes relays are known to make.

Every name in ``SIGNED_HEADERS`` is listed in ``h=`` once more than the message has it (once when
it has none): a verifier then also checks that no further copy was added on the way, so nobody
can prepend a second ``From`` or ``Subject``, or add a ``Reply-To``, to a signed message.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from campaigns.core.errors import ConfigError, EdmError, InputError

SIGNED_HEADERS = (
    "from",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
"""Headers a sender writes and no relay adds; the unsubscribe pair must be signed for RFC 8058."""

MIN_RSA_BITS = 1024
"""RFC 8301: verifiers must not accept smaller keys."""

_FOLD_AT = 76
_MIN_PIECE = 8
_WHITESPACE_RUN = re.compile(rb"[ \t]+")
_WHITESPACE_TO_SHORTEN = re.compile(rb"\t[ \t]*| [ \t]+")
_FIELD_BOUNDARY = re.compile(rb"\r\n(?![ \t])")
# A selector may have several labels ("2026.marketing"), a domain needs at least one.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

PrivateKey = RSAPrivateKey | Ed25519PrivateKey


class DkimSigner:
    """Signs messages for one domain and selector with one key; build once per process.

    ``sign`` is safe to call from several threads or tasks: it keeps no state between calls.
    """

    def __init__(self, private_key: PrivateKey, *, domain: str, selector: str) -> None:
        self.domain = checked_dns_name(domain, "DKIM domain")
        self.selector = checked_dns_name(selector, "DKIM selector")
        self._key = private_key
        if isinstance(private_key, RSAPrivateKey):
            if private_key.key_size < MIN_RSA_BITS:
                raise ConfigError(
                    f"DKIM key: RSA key of {private_key.key_size} bits; "
                    f"receivers refuse fewer than {MIN_RSA_BITS} (use 2048)"
                )
            self.algorithm = "rsa-sha256"
        elif isinstance(private_key, Ed25519PrivateKey):
            self.algorithm = "ed25519-sha256"
        else:
            raise ConfigError("DKIM key: not an RSA or Ed25519 private key")
        self._fixed_tags = (
            f"v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain}; s={self.selector};"
        ).split(" ")

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """``message`` (CRLF line endings) with a DKIM-Signature header in front of it.

        ``timestamp`` is the ``t=`` tag in seconds since the epoch; the current time by default.
        """
        separator = message.find(b"\r\n\r\n")
        if separator < 0:
            raise InputError("cannot DKIM-sign a message without a blank line after its header")
        fields = header_fields(message[:separator])
        body_hash = hashlib.sha256(relaxed_body(message[separator + 4 :])).digest()

        by_name: dict[bytes, list[bytes]] = {}
        for field in fields:
            field_name = field.partition(b":")[0].rstrip(b" \t").lower()
            by_name.setdefault(field_name, []).append(field)
        names: list[str] = []
        signed = bytearray()
        for name in SIGNED_HEADERS:
            # A verifier takes copies from the bottom up, so they are hashed in that order.
            for field in reversed(by_name.get(name.encode(), ())):
                signed += relaxed_header(field)
                names.append(name)
            names.append(name)

        header = _FoldedHeader("DKIM-Signature:")
        for tag in self._fixed_tags:
            header.add(tag, starts_tag=True)
        header.add(f"t={int(time.time()) if timestamp is None else timestamp};", starts_tag=True)
        header.add(f"h={names[0]}", starts_tag=True)
        for name in names[1:]:
            header.add(f":{name}", starts_tag=False)
        header.add(";", starts_tag=False)
        header.add("bh=", starts_tag=True)
        header.fill(base64.b64encode(body_hash).decode("ascii") + ";")
        header.add("b=", starts_tag=True)
        # The signature covers its own header with b= empty, without the final CRLF.
        signed += relaxed_header(header.text().encode("ascii"))[:-2]
        header.fill(base64.b64encode(self._signature(bytes(signed))).decode("ascii"))
        return header.text().encode("ascii") + b"\r\n" + message

    def _signature(self, data: bytes) -> bytes:
        if isinstance(self._key, RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463: Ed25519 signs the SHA-256 digest of the data, not the data itself.
        return self._key.sign(hashlib.sha256(data).digest())


def header_fields(header: bytes) -> list[bytes]:
    """The fields of a header section (CRLF line endings), each with its continuation lines."""
    return _FIELD_BOUNDARY.split(header)


def relaxed_header(field: bytes) -> bytes:
    """One header field (its continuation lines included) in relaxed form: ``name:value\\r\\n``."""
    name, _, value = field.partition(b":")
    value = _WHITESPACE_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" \t")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """The body in relaxed form: runs of white space as one space, none at line ends, no empty
    lines at the end, and a final CRLF unless the body is empty."""
    # Quoted-printable and base64 bodies rarely have a tab or two spaces in a row: a substring
    # test is far cheaper than running the regular expression over every byte.
    if b"\t" in body or b"  " in body:
        body = _WHITESPACE_TO_SHORTEN.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n").rstrip(b" ")
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def checked_dns_name(name: str, what: str, error: type[EdmError] = ConfigError) -> str:
    """``name`` lower-cased, without a final dot; ``error`` naming ``what`` when it is not a
    host name (labels of letters, digits, ``-`` and ``_``)."""
    name = name.strip().rstrip(".").lower()
    if not _DNS_NAME.fullmatch(name) or len(name) > 253:
        raise error(f"{what} {name!r}: not a valid DNS name")
    return name


class _FoldedHeader:
    """A header built piece by piece, folded before a piece that would pass column 76.

    Folding is only ever done where RFC 6376 allows white space: between tags, around the
    colons of ``h=``, and inside base64 values.
    """

    def __init__(self, name: str) -> None:
        self._lines: list[str] = [name]

    def add(self, piece: str, *, starts_tag: bool) -> None:
        separator = " " if starts_tag else ""
        if len(self._lines[-1]) + len(separator) + len(piece) > _FOLD_AT and self._lines[-1]:
            self._lines.append(" " + piece)
        else:
            self._lines[-1] += separator + piece

    def fill(self, text: str) -> None:
        """``text`` (a base64 value, where white space is ignored) filling lines to the limit."""
        while text:
            room = _FOLD_AT - len(self._lines[-1])
            if room < _MIN_PIECE:
                self._lines.append(" ")
                room = _FOLD_AT - 1
            self._lines[-1] += text[:room]
            text = text[room:]

    def text(self) -> str:
        return "\r\n".join(self._lines)
