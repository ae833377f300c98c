"""Which URLs events may be POSTed to: http(s) only, and by default only to public addresses.

A person who can add an endpoint could otherwise make the workers POST into the private network
they run in (a cloud metadata service, an admin port on loopback). The host is resolved and every
address it has must be public, when the endpoint is added and again before each POST (a name
can be pointed elsewhere later). ``EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE=1`` lifts the rule for
receivers on the same host or network.

What is left: a name that resolves to a public address for the check and to a private one for
the connection a moment later (DNS rebinding with a zero TTL) is not caught.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

from campaigns.core.errors import InputError

MAX_URL_CHARS = 2000

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


class UnsafeDestination(InputError):
    """The URL's host is, or resolves to, an address events may not be sent to."""


def checked_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host; InputError naming what is wrong."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InputError(f"url: longer than {MAX_URL_CHARS} characters")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise InputError(f"url: {url[:80]!r}: contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise InputError(f"url: {url[:80]!r}: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise InputError(f"url: {url[:80]!r}: only http and https URLs are accepted")
    if not parts.hostname:
        raise InputError(f"url: {url[:80]!r}: no host")
    return url


def check_destination(
    url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo
) -> None:
    """Raise UnsafeDestination unless every address of the URL's host is public (or allowed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if allow_private:
        return
    for address in _addresses(parts, resolve):
        if not _is_public(address):
            raise UnsafeDestination(
                f"url: {host} is {address}, a private, loopback or reserved address "
                "(set EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE=1 to allow it)"
            )


def _addresses(
    parts: SplitResult, resolve: Resolver
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    host = parts.hostname or ""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InputError(f"url: {host}: cannot be resolved ({error})") from None
    # The scope of a link-local IPv6 address (``fe80::1%eth0``) is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
