"""A request to send one message, and the checks it must pass before anything is recorded.

The API and ``edm send`` both build a ``MessageRequest``; every error names the field it is
about (``headers.X-Foo``, ``attachments[1].content``), as the caller wrote it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaigns.content.attachments import Attachment, checked_attachment
from campaigns.core.errors import InputError
from campaigns.lists.fields import email_key, normalise_email
from campaigns.lists.suppression import TRANSACTIONAL_CATEGORY

MAX_DATA_BYTES = 64 * 1024
"""Merge data, as JSON: a receipt's lines fit many times over."""
MAX_HEADERS = 20
MAX_HEADER_VALUE_CHARS = 900
MAX_TAGS = 10
MAX_TAG_CHARS = 64
CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,200}")
SAFE_HEADERS = frozenset(
    {
        "in-reply-to",
        "references",
        "auto-submitted",
        "importance",
        "priority",
        "x-priority",
        "x-auto-response-suppress",
        "x-entity-ref-id",
    }
)
"""Headers a caller may set besides any ``X-`` header; the sender writes every other itself
(addresses, dates, ids, MIME structure, List-Unsubscribe) or it would change how mail is read."""
_REFUSED_X_HEADERS = ("x-spam", "x-original", "x-forwarded", "x-mailer", "x-edm")
_FIELD_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass(frozen=True)
class AttachmentInput:
    filename: str
    content_base64: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class MessageRequest:
    to: str
    to_name: str | None = None
    template: str | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    from_address: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    category: str = TRANSACTIONAL_CATEGORY
    track: bool = False
    attachments: Sequence[AttachmentInput] = ()
    idempotency_key: str | None = None
    raw_mime: bytes | None = None
    """A whole message as an application submitted it by SMTP, sent as it is (``raw_mime``)."""
    mime_id: int | None = None
    """Where ``raw_mime`` is stored already (``submitted_mime.stored_mime``): the message points
    there instead of keeping a copy of its own."""


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check that needs no template and no database."""

    request: MessageRequest
    to: str
    to_key: str
    from_address: str
    headers: dict[str, str]
    attachments: tuple[Attachment, ...]


def checked_request(
    request: MessageRequest, *, default_from: str, max_attachment_bytes: int
) -> CheckedRequest:
    try:
        to = normalise_email(request.to.strip())
    except InputError as error:
        raise InputError(f"to.email: {error}") from None
    from_address = request.from_address or default_from
    if not from_address:
        raise InputError("from: required (or set EDM_TX_FROM_ADDRESS)")
    _check_content_choice(request)
    _check_one_line("to.name", request.to_name)
    _check_one_line("from", from_address)
    _check_one_line("reply_to", request.reply_to)
    _check_one_line("subject", request.subject)
    if not CATEGORY.fullmatch(request.category):
        raise InputError(f"category: {request.category[:40]!r}: a-z, 0-9, '_' and '-' (32 at most)")
    if request.idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(
        request.idempotency_key
    ):
        raise InputError("Idempotency-Key: 1 to 200 printable ASCII characters")
    _check_tags(request.tags)
    _check_data(request.data)
    return CheckedRequest(
        request=request,
        to=to,
        to_key=email_key(to),
        from_address=from_address,
        headers=checked_headers(request.headers),
        attachments=decoded_attachments(request.attachments, max_attachment_bytes),
    )


def request_fingerprint(checked: CheckedRequest) -> str:
    """SHA-256 of the request in a canonical form (every field but its idempotency key, the
    address normalised, keys sorted): what the same key must come with again to mean the same
    message."""
    request = checked.request
    canonical = {
        "to": checked.to,
        "to_name": request.to_name,
        "template": request.template,
        "subject": request.subject,
        "html": request.html,
        "text": request.text,
        "data": request.data,
        "from": request.from_address,
        "reply_to": request.reply_to,
        "headers": checked.headers,
        "tags": list(request.tags),
        "category": request.category,
        "track": request.track,
        "attachments": [
            [given.filename, given.content_type, given.content_base64]
            for given in request.attachments
        ],
        "raw_mime": None
        if request.raw_mime is None
        else hashlib.sha256(request.raw_mime).hexdigest(),
    }
    encoded = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise InputError(f"headers: {MAX_HEADERS} at most")
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if not _FIELD_NAME.fullmatch(name) or lower in seen:
            raise InputError(f"headers.{name[:64]}: not a header name, or given twice")
        seen.add(lower)
        if lower not in SAFE_HEADERS and (
            not lower.startswith("x-") or lower.startswith(_REFUSED_X_HEADERS)
        ):
            raise InputError(
                f"headers.{name}: not allowed (allowed: X-* and {', '.join(sorted(SAFE_HEADERS))})"
            )
        _check_one_line(f"headers.{name}", value)
        if len(value) > MAX_HEADER_VALUE_CHARS:
            raise InputError(f"headers.{name}: longer than {MAX_HEADER_VALUE_CHARS} characters")
    return dict(headers)


def decoded_attachments(
    attachments: Sequence[AttachmentInput], max_total_bytes: int
) -> tuple[Attachment, ...]:
    decoded: list[Attachment] = []
    total = 0
    for index, given in enumerate(attachments):
        where = f"attachments[{index}]"
        # Checked before decoding: base64 is 4 characters for every 3 bytes.
        if total + len(given.content_base64) * 3 // 4 > max_total_bytes:
            raise InputError(
                f"{where}.content: attachments exceed EDM_TX_MAX_ATTACHMENT_BYTES "
                f"({max_total_bytes} bytes in all)"
            )
        try:
            content = base64.b64decode(given.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(f"{where}.content: not base64") from None
        total += len(content)
        decoded.append(checked_attachment(given.filename, given.content_type, content, where))
    return tuple(decoded)


def _check_content_choice(request: MessageRequest) -> None:
    inline = [request.subject, request.html, request.text]
    if request.raw_mime is not None:
        if request.template is not None or any(part is not None for part in inline):
            raise InputError("raw_mime: a whole message comes without template or parts")
        if request.headers or request.attachments or request.track:
            raise InputError("raw_mime: a whole message has its headers and attachments in it")
        return
    if request.template is not None:
        if any(part is not None for part in inline):
            raise InputError("template: give a template or subject/html/text, not both")
        return
    if request.subject is None or request.html is None:
        raise InputError("template: required, or else subject and html")


def _check_one_line(where: str, value: str | None) -> None:
    if value is not None and _LINE_BREAK.search(value):
        raise InputError(f"{where}: must not contain a line break (CR or LF)")


def _check_tags(tags: Sequence[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InputError(f"tags: {MAX_TAGS} at most")
    for index, tag in enumerate(tags):
        if not tag or len(tag) > MAX_TAG_CHARS or not tag.isprintable():
            raise InputError(f"tags[{index}]: 1 to {MAX_TAG_CHARS} printable characters")


def _check_data(data: Mapping[str, Any]) -> None:
    try:
        size = len(json.dumps(data, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise InputError("data: must be JSON") from None
    if size > MAX_DATA_BYTES:
        raise InputError(f"data: larger than {MAX_DATA_BYTES} bytes as JSON")
