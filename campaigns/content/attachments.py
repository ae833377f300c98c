"""Files attached to a message: a ``multipart/mixed`` around the text and HTML alternatives.

Campaign messages carry none; one-to-one mail (receipts, invoices) does. Names and types come
from API callers, so both are checked or encoded before they reach a header.
"""

from __future__ import annotations

import base64
import re
import secrets
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from campaigns.content.templating import one_line
from campaigns.core.errors import InputError

MAX_FILENAME_CHARS = 200
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]{1,64}"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_QUOTABLE_NAME = re.compile(r"[ -~]+")
_BASE64_LINE_CHARS = 76


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


def checked_attachment(filename: str, content_type: str, content: bytes, where: str) -> Attachment:
    """An attachment whose name and type can go into headers; InputError naming ``where``."""
    name = one_line(filename).replace("/", "_").replace("\\", "_")
    # Percent-encoded, a name must still fit on one header line (998 octets).
    if not name or len(name) > MAX_FILENAME_CHARS or len(_encoded_name(name)) > 900:
        raise InputError(f"{where}.filename: 1 to {MAX_FILENAME_CHARS} characters")
    kind = content_type.strip().lower() or "application/octet-stream"
    if not _CONTENT_TYPE.fullmatch(kind):
        raise InputError(f"{where}.content_type: {content_type[:80]!r} is not a MIME type")
    return Attachment(filename=name, content_type=kind, content=content)


def with_attachments(
    alternative_headers: bytes, alternative_body: bytes, attachments: Sequence[Attachment]
) -> bytes:
    """The MIME headers and body of a ``multipart/mixed`` whose first part is the
    ``multipart/alternative`` given (its Content-Type header, then its body from the CRLF
    before its first delimiter), followed by each attachment in base64."""
    boundary = b"=_" + secrets.token_hex(16).encode()
    parts = [
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary="%s"\r\n' % boundary,
        b"\r\n--%s\r\n" % boundary,
        alternative_headers,
        alternative_body,
    ]
    for attachment in attachments:
        parts.append(b"\r\n--%s\r\n" % boundary)
        parts.append(_part_headers(attachment))
        parts.append(_base64_lines(attachment.content))
    parts.append(b"\r\n--%s--\r\n" % boundary)
    return b"".join(parts)


def _part_headers(attachment: Attachment) -> bytes:
    name = attachment.filename
    if name.isascii() and _QUOTABLE_NAME.fullmatch(name):
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        type_name, disposition_name = f'name="{quoted}"', f'filename="{quoted}"'
    else:
        # RFC 2231: a UTF-8 name percent-encoded, which every current mail client reads.
        encoded = _encoded_name(name)
        type_name, disposition_name = f"name*=utf-8''{encoded}", f"filename*=utf-8''{encoded}"
    return (
        f"Content-Type: {attachment.content_type};\r\n {type_name}\r\n"
        f"Content-Disposition: attachment;\r\n {disposition_name}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")


def _encoded_name(name: str) -> str:
    return urllib.parse.quote(name.encode("utf-8"), safe="")


def _base64_lines(content: bytes) -> bytes:
    encoded = base64.b64encode(content)
    return b"\r\n".join(
        encoded[start : start + _BASE64_LINE_CHARS]
        for start in range(0, len(encoded), _BASE64_LINE_CHARS)
    )
