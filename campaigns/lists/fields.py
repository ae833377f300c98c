"""Recipient fields: CSV headers as merge-field names, and email addresses as identities.

A merge-field name is what a template writes (``{{ first_name }}``), so it must be a Python
identifier; an address is stored as email-validator normalises it and matched by ``email_key``.
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

from campaigns.core.errors import CsvImportError, InputError

EMAIL_FIELD = "email"
EMAIL_COLUMN_NAMES = ("email", "e_mail", "email_address", "e_mail_address", "mail")
"""Normalised headers accepted as the address column, the first one present wins."""

_NOT_NAME_CHARACTERS = re.compile(r"[^a-z0-9]+")

# Plain ASCII addresses whose local part is an RFC 5322 dot-atom: for these email-validator
# returns the local part unchanged and the domain lower-cased, once the domain itself passes.
_ATEXT = r"A-Za-z0-9_!#$%&'*+\-/=?^`{|}~"
_PLAIN_ADDRESS = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@([A-Za-z0-9.\-]+)")
_CASE_INSENSITIVE_LOCAL_PARTS = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_DOMAIN_CACHE_LIMIT = 100_000
_plain_domains: dict[str, bool] = {}
"""Domain as written -> whether email-validator accepts it and only lower-cases it."""


def normalise_field_name(header: str) -> str:
    """The merge-field name for a column header: ``" First Name "`` -> ``"first_name"``.

    Accents are dropped rather than replaced (``"Prénom"`` -> ``"prenom"``); other characters
    outside a-z and 0-9 become ``_``; a leading digit gets a ``_`` in front. The result may be
    empty (a header of only punctuation or of non-Latin script): the caller must reject that.
    """
    decomposed = unicodedata.normalize("NFKD", header.strip().lower())
    without_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    name = _NOT_NAME_CHARACTERS.sub("_", without_marks).strip("_")
    if name[:1].isdigit():
        name = "_" + name
    return name


def find_email_column(normalised_headers: list[str]) -> int:
    """Index of the address column among normalised headers; CsvImportError when none is.

    The message does not name the file: the caller knows it and adds it.
    """
    for name in EMAIL_COLUMN_NAMES:
        if name in normalised_headers:
            return normalised_headers.index(name)
    shown = ", ".join(repr(name) for name in normalised_headers[:12])
    if len(normalised_headers) > 12:
        shown += f", ... ({len(normalised_headers)} columns)"
    raise CsvImportError(
        f"no email column: expected a header such as Email, E-mail or Email Address; "
        f"found {shown or 'no columns'}"
    )


def normalise_email(address: str) -> str:
    """The address as ``validate_email(address, check_deliverability=False).normalized``.

    Raises InputError with email-validator's one-line reason when the address is invalid.
    Most addresses in real lists are plain ASCII at a handful of domains; for those the
    result is computed without the full validator (see ``_normalise_plain``), which the
    tests check against email-validator itself.
    """
    plain = _normalise_plain(address)
    if plain is not None:
        return plain
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InputError(" ".join(str(error).split())) from None


def email_key(normalised_address: str) -> str:
    """The identity used for de-duplication and suppression."""
    return normalised_address.lower()


def _normalise_plain(address: str) -> str | None:
    """email-validator's result for a dot-atom ASCII address, or None to ask email-validator.

    Why this equals the full validation: for an ASCII address with one ``@``, no quotes and no
    angle brackets, email-validator splits at the ``@``, accepts a dot-atom local part as is
    (lower-casing only the RFC 2142 role names, which go the slow way here), checks the domain
    on its own, and then checks the whole length; an ASCII domain without ``xn--`` labels comes
    back lower-cased. So a domain it accepts once (probed with the local part ``a``) is accepted
    with any dot-atom local part, as long as the address fits in ``EMAIL_MAX_LENGTH``.
    """
    if len(address) > EMAIL_MAX_LENGTH:
        return None
    match = _PLAIN_ADDRESS.fullmatch(address)
    if match is None:
        return None
    local_part, domain = match.groups()
    if local_part.lower() in _CASE_INSENSITIVE_LOCAL_PARTS:
        return None
    plain = _plain_domains.get(domain)
    if plain is None:
        plain = _domain_is_plain(domain)
        if len(_plain_domains) >= _DOMAIN_CACHE_LIMIT:
            _plain_domains.clear()
        _plain_domains[domain] = plain
    return f"{local_part}@{domain.lower()}" if plain else None


def _domain_is_plain(domain: str) -> bool:
    if "xn--" in domain.lower():
        return False
    try:
        validated = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return validated.normalized == f"a@{domain.lower()}"
