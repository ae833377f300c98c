"""Addresses in header text, read in one pass over it.

``email.utils.getaddresses`` and address regexes that search backwards from each position take
time growing with the square of crafted input (long runs without ``@``, nested comments; the
latter raise RecursionError too). These readers look at each character once and give up quietly
on what is not an address.
"""

from __future__ import annotations

from collections.abc import Iterator

from campaigns.bounces.reading_limits import MAX_ADDRESSES_PER_HEADER, MAX_HEADER_VALUE_CHARS

_NOT_IN_ADDRESS = frozenset(' \t\r\n<>;,"')


def addresses_in(text: str, *, limit: int = MAX_ADDRESSES_PER_HEADER) -> list[str]:
    """The addresses of an address list ("Ann <a@x>, b@y (Bob), \"Doe, J\" <j@z>"), lower-cased.

    Quoted strings and comments are skipped, a comma or semicolon outside them ends an item, a
    colon ends a group's name; an item's address is what its angle brackets hold, else its bare
    text. Only ``limit`` addresses and the first ``MAX_HEADER_VALUE_CHARS`` characters are read.
    """
    found: list[str] = []
    for item in _items(text[:MAX_HEADER_VALUE_CHARS]):
        address = _plain_address(item)
        if address is not None:
            found.append(address)
            if len(found) == limit:
                break
    return found


def typed_address(field: str) -> str | None:
    """The address in a DSN or ARF address field ("rfc822; a@b", "<a@b>", "a@b"), lower-cased:
    the last token of the field, without the angle brackets around it."""
    value = field[-MAX_HEADER_VALUE_CHARS:].rsplit(";", 1)[-1].strip() if field else ""
    value = value.removesuffix(">").rstrip()
    start = len(value)
    while start > 0 and value[start - 1] not in _NOT_IN_ADDRESS:
        start -= 1
    return _plain_address(value[start:])


def _plain_address(text: str) -> str | None:
    candidate = text.strip()
    if not candidate or any(character in _NOT_IN_ADDRESS for character in candidate):
        return None
    if "@" not in candidate[1:-1]:
        return None
    return candidate.lower()


def _items(text: str) -> list[str]:
    """Each item's address part: inside its last angle brackets, else its bare words."""
    items: list[str] = []
    bare: list[str] = []
    angle: list[str] | None = None
    last_angle: str | None = None
    for character in _unquoted(text):
        if character == "<":
            angle = []
        elif character == ">" and angle is not None:
            last_angle, angle = "".join(angle), None
        elif character in ",;" and angle is None:
            items.append(last_angle if last_angle is not None else "".join(bare))
            bare, last_angle = [], None
        elif character == ":" and angle is None:
            bare = []  # what came before was a group's name ("Team: a@x, b@y;")
        else:
            (angle if angle is not None else bare).append(character)
    if angle is not None:
        last_angle = "".join(angle)
    items.append(last_angle if last_angle is not None else "".join(bare))
    return items


def _unquoted(text: str) -> Iterator[str]:
    """The characters of ``text`` outside quoted strings and (nested) comments."""
    in_quotes = escaped = False
    comment_depth = 0
    for character in text:
        if escaped:
            escaped = False
        elif character == "\\" and (in_quotes or comment_depth):
            escaped = True
        elif in_quotes:
            in_quotes = character != '"'
        elif comment_depth:
            comment_depth += {"(": 1, ")": -1}.get(character, 0)
        elif character == '"':
            in_quotes = True
        elif character == "(":
            comment_depth = 1
        else:
            yield character
