"""RFC 5322 messages as bytes, assembled from a skeleton prepared once per campaign.

Building an ``email.message.EmailMessage`` and flattening it costs about 5 ms a message. Here the
headers that never change and the MIME boundary are prepared once, and each recipient costs a few
headers, two quoted-printable encodings and a join. Every line ends in CRLF and stays within the
998-octet limit; headers are folded below 78 characters wherever there is a place to fold.

Nothing from recipient data or templates reaches a header unsanitised: names, subjects and extra
header values have control characters replaced by spaces, so they can never start a new header.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from campaigns.content.attachments import Attachment, with_attachments
from campaigns.content.templating import RenderedMessage, one_line
from campaigns.core.errors import InputError

MAX_LINE_OCTETS = 998
_FOLD_AT = 78
"""Lines are kept shorter than this when they can be folded (RFC 5322 section 2.1.1)."""

_ENCODED_WORD_PREFIX = "=?utf-8?b?"
_UNSTRUCTURED_WORD_BYTES = 39
"""UTF-8 bytes per encoded-word in a subject: 52 base64 characters, so ``Subject:`` and a word
fit on one line."""
_PHRASE_WORD_BYTES = 42
"""UTF-8 bytes per encoded-word in a display name. As large as fits beside ``From:``: Python's
parser reads the space between encoded-words in a name as part of the name, where RFC 2047 and
mail clients drop it, so a name split in two is read differently by the two. Names rarely need
more than one word."""

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_PHRASE_ATOMS = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_URI_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>]")

# Headers this module writes itself; an extra header of the same name would make a second copy.
_OWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)


def message_id_for(campaign_uuid: str, job_id: int, domain: str, tag: str = "") -> str:
    """The Message-ID of a job: the same on every retry, different in every campaign.

    ``tag`` proves the id is ours (an HMAC of the job id, see ``campaigns.bounces.verp``):
    reports name a job by its Message-ID only when the tag verifies.
    """
    return (
        f"<{campaign_uuid}.{job_id}.{tag}@{domain}>"
        if tag
        else f"<{campaign_uuid}.{job_id}@{domain}>"
    )


class MessageSkeleton:
    """Everything that is the same for every recipient of a campaign, prepared once."""

    def __init__(
        self,
        *,
        from_address: str,
        campaign_uuid: str,
        list_unsubscribe_mailto: str | None = None,
        message_id_tag: Callable[[int], str] | None = None,
    ) -> None:
        """``message_id_tag`` gives the tag of each job's Message-ID; without it (previews,
        checks) Message-IDs carry none and no report can name their job."""
        name, address = _parse_from(from_address)
        try:
            self.sender_address = _ascii_address(address)
        except InputError as error:
            raise InputError(f"from address {from_address!r}: {error}") from None
        self.sender_domain = self.sender_address.rpartition("@")[2]
        self.campaign_uuid = campaign_uuid
        self._message_id_tag = message_id_tag
        self._mailto = ""
        if list_unsubscribe_mailto:
            self._mailto = _mailto_uri(list_unsubscribe_mailto)
        self._from_header = _header("From", _mailbox_words(one_line(name), self.sender_address))
        self._boundary = _new_boundary()
        self._tail_headers = _multipart_headers(self._boundary)
        self._text_part_start, self._html_part_start, self._end = _part_framing(self._boundary)

    def message_id(self, job_id: int) -> str:
        tag = self._message_id_tag(job_id) if self._message_id_tag else ""
        return message_id_for(self.campaign_uuid, job_id, self.sender_domain, tag)

    def build(
        self,
        *,
        job_id: int,
        to_address: str,
        rendered: RenderedMessage,
        unsubscribe_url: str,
        date: datetime | None = None,
        to_name: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        reply_to: str | None = None,
        list_unsubscribe: bool = True,
        attachments: Sequence[Attachment] = (),
    ) -> bytes:
        """The message for one recipient, ready to sign and send.

        ``list_unsubscribe=False`` leaves out the List-Unsubscribe headers: a password reset
        offers no unsubscribing (the link may still be in the body)."""
        text_encoding, text_body = _encode_body(rendered.text)
        html_encoding, html_body = _encode_body(rendered.html)
        try:
            to = _ascii_address(to_address)
        except InputError as error:
            raise InputError(f"to address {to_address!r}: {error}") from None
        to_words = _mailbox_words(one_line(to_name or ""), to)
        unsubscribe = [f"<{_checked_uri(unsubscribe_url, 'unsubscribe URL')}>"]
        if self._mailto:
            unsubscribe[0] += ","
            unsubscribe.append(f"<{self._mailto}>")
        message_id = self.message_id(job_id)
        headers = [
            self._from_header,
            _header("To", to_words),
            _subject_header(one_line(rendered.subject)),
            b"Date: %s\r\n" % format_datetime(date or datetime.now(UTC)).encode(),
            b"Message-ID: %s\r\n" % message_id.encode(),
        ]
        if reply_to:
            headers.append(_reply_to_header(reply_to))
        if list_unsubscribe:
            headers.append(_header("List-Unsubscribe", unsubscribe))
            headers.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        if extra_headers:
            headers.extend(_extra_header(name, value) for name, value in extra_headers.items())
        boundary = self._boundary
        tail, text_start, html_start, end = (
            self._tail_headers,
            self._text_part_start,
            self._html_part_start,
            self._end,
        )
        marker = b"--" + boundary
        if marker in text_body or marker in html_body:
            # Cannot happen with "=_" in the boundary (quoted-printable and base64 never produce
            # it), but a collision would silently cut the message, so it is checked anyway.
            boundary = _new_boundary()
            tail = _multipart_headers(boundary)
            text_start, html_start, end = _part_framing(boundary)
        alternatives = [text_start, text_encoding, text_body, html_start, html_encoding, html_body]
        if attachments:
            inner_headers = tail.removeprefix(_MIME_VERSION)
            body = with_attachments(inner_headers, b"".join([*alternatives, end]), attachments)
            return b"".join([*headers, body])
        return b"".join([*headers, tail, *alternatives, end])


def _new_boundary() -> bytes:
    return b"=_" + secrets.token_hex(16).encode()


_MIME_VERSION = b"MIME-Version: 1.0\r\n"


def _multipart_headers(boundary: bytes) -> bytes:
    return _MIME_VERSION + b'Content-Type: multipart/alternative;\r\n boundary="%s"\r\n' % (
        boundary
    )


def _part_framing(boundary: bytes) -> tuple[bytes, bytes, bytes]:
    # The CRLF before each "--boundary" belongs to the delimiter, not to the part before it.
    text_start = b'\r\n--%s\r\nContent-Type: text/plain; charset="utf-8"\r\n' % boundary
    html_start = b'\r\n--%s\r\nContent-Type: text/html; charset="utf-8"\r\n' % boundary
    end = b"\r\n--%s--\r\n" % boundary
    return text_start, html_start, end


_QUOTED_PRINTABLE = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
_BASE64 = b"Content-Transfer-Encoding: base64\r\n\r\n"


def _encode_body(text: str) -> tuple[bytes, bytes]:
    """The Content-Transfer-Encoding header and the encoded body, which decodes to exactly ``text``
    with CRLF line breaks (the CRLF that follows it belongs to the next boundary)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8", "replace")
    # Quoted-printable encodes each line on its own, and most lines of a campaign's messages are
    # the same for every recipient: encoding only the lines not seen lately is 3-4 times faster.
    encoded = b"\r\n".join(map(_quoted_printable_line, data.split(b"\n")))
    if len(encoded) > (len(data) + data.count(b"\n")) * 3 // 2:
        # Mostly non-ASCII text (CJK, Cyrillic): base64 is half the size of quoted-printable.
        lines = base64.encodebytes(data.replace(b"\n", b"\r\n"))
        return _BASE64, lines.replace(b"\n", b"\r\n")[:-2]
    # "From " at a line start gets mangled by mbox-style relays and a lone "." by careless ones;
    # encoding the first character makes both lines safe without changing the text.
    if encoded.startswith((b"From ", b".")):
        encoded = (b"=46" if encoded[0:1] == b"F" else b"=2E") + encoded[1:]
    encoded = encoded.replace(b"\r\nFrom ", b"\r\n=46rom ").replace(b"\r\n.", b"\r\n=2E")
    return _QUOTED_PRINTABLE, encoded


@functools.lru_cache(maxsize=8192)
def _quoted_printable_line(line: bytes) -> bytes:
    # b2a_qp breaks long lines with CRLF only when the first line break it sees is a CRLF, and
    # encodes trailing whitespace only before a line break: so it gets one, taken off again.
    return binascii.b2a_qp(line + b"\r\n", istext=True)[:-2]


def _header(name: str, words: Iterable[str]) -> bytes:
    """``Name: words`` folded before a word whenever the line would reach 78 characters."""
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) >= _FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    folded = "\r\n".join(lines) + "\r\n"
    if any(len(part) > MAX_LINE_OCTETS for part in lines):
        raise InputError(f"{name} header has a word longer than {MAX_LINE_OCTETS} characters")
    return folded.encode("ascii")


@functools.lru_cache(maxsize=1024)
def _subject_header(subject: str) -> bytes:
    # Cached: a subject without merge fields is the same for every recipient of a campaign.
    return _header("Subject", _unstructured_words(subject))


def _unstructured_words(text: str) -> list[str]:
    words = text.split(" ")
    # "=?" in plain text would be decoded by readers as if it were an encoded-word.
    if text.isascii() and "=?" not in text and all(len(word) < 900 for word in words):
        return words
    return _encoded_words(text, _UNSTRUCTURED_WORD_BYTES)


def _encoded_words(text: str, word_bytes: int) -> list[str]:
    """RFC 2047 encoded-words for ``text``; readers join adjacent ones without the spaces."""
    words: list[str] = []
    chunk: list[str] = []
    chunk_bytes = 0
    for character in text:
        size = len(character.encode("utf-8", "replace"))
        if chunk_bytes + size > word_bytes:
            words.append(_encoded_word("".join(chunk)))
            chunk, chunk_bytes = [], 0
        chunk.append(character)
        chunk_bytes += size
    if chunk:
        words.append(_encoded_word("".join(chunk)))
    return words


def _encoded_word(text: str) -> str:
    encoded = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")
    return f"{_ENCODED_WORD_PREFIX}{encoded}?="


def _mailbox_words(name: str, address: str) -> list[str]:
    """A mailbox as foldable words: the display name (atoms, a quoted string or encoded-words)
    followed by ``<address>``, or the bare address when there is no name."""
    if not name:
        return [address]
    if _PHRASE_ATOMS.fullmatch(name) and "=?" not in name:
        return [*name.split(" "), f"<{address}>"]
    if name.isascii() and "=?" not in name and len(name) < 60:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return [f'"{quoted}"', f"<{address}>"]
    return [*_encoded_words(name, _PHRASE_WORD_BYTES), f"<{address}>"]


def sender_domain_of(from_address: str) -> str:
    """The domain of a From (``Name <address>`` or an address alone), in ASCII, lower case."""
    _name, address = _parse_from(from_address)
    try:
        checked = _ascii_address(address)
    except InputError as error:
        raise InputError(f"from address {from_address!r}: {error}") from None
    return checked.rpartition("@")[2].lower()


def _parse_from(from_address: str) -> tuple[str, str]:
    """``(display name, address)`` from ``Name <address>``, a quoted name and its address, or an
    address alone."""
    if _CONTROL.search(from_address):
        raise InputError(f"from address {from_address!r}: contains a control character")
    text = from_address.strip()
    if not (text.endswith(">") and "<" in text):
        return "", text
    name, _, address = text[:-1].rpartition("<")
    name = name.strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name, address.strip()


def _ascii_address(address: str) -> str:
    """``address`` checked, with an internationalised domain in its ASCII (punycode) form."""
    local, at, domain = address.rpartition("@")
    if not at:
        raise InputError("not an email address: no @")
    if not _LOCAL_PART.fullmatch(local):
        raise InputError("the part before the @ has characters this sender cannot put in a header")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise InputError("the domain is not a valid host name") from None
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise InputError("the domain is not a valid host name")
    return f"{local}@{domain}"


def _mailto_uri(mailto: str) -> str:
    """A ``mailto:`` URI from an address or a URI, its domain in ASCII (URIs cannot hold more)."""
    address, question_mark, query = mailto.strip().removeprefix("mailto:").partition("?")
    try:
        address = _ascii_address(address)
    except InputError as error:
        raise InputError(f"list-unsubscribe mailto {mailto!r}: {error}") from None
    return _checked_uri(f"mailto:{address}{question_mark}{query}", "list-unsubscribe mailto")


def _checked_uri(uri: str, what: str) -> str:
    if not uri or not uri.isascii() or _URI_FORBIDDEN.search(uri):
        raise InputError(f"{what} {uri!r}: empty, not ASCII, or has spaces, controls or '<>'")
    return uri


def _reply_to_header(reply_to: str) -> bytes:
    name, address = _parse_from(reply_to)
    try:
        checked = _ascii_address(address)
    except InputError as error:
        raise InputError(f"reply-to address {reply_to!r}: {error}") from None
    return _header("Reply-To", _mailbox_words(one_line(name), checked))


def _extra_header(name: str, value: str) -> bytes:
    if not _FIELD_NAME.fullmatch(name):
        raise InputError(f"extra header name {name!r} is not a valid header field name")
    if name.lower() in _OWN_HEADERS:
        raise InputError(f"extra header {name!r} would duplicate one the message always has")
    return _header(name, _unstructured_words(one_line(value)))
