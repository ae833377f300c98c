"""The ``EDM_SMTP_URL`` setting: which relay to send through, how securely, as whom."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from campaigns.core.errors import ConfigError

Security = Literal["none", "starttls", "tls"]

_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
_EXAMPLES = "smtp://host:25, smtp+starttls://user:pass@host:587 or smtps://user:pass@host:465"


@dataclass(frozen=True)
class SmtpRelay:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def display(self) -> str:
        """The relay as a URL without its password, safe for logs and error messages."""
        scheme = next(name for name, (security, _) in _SCHEMES.items() if security == self.security)
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpRelay:
    """Read a relay URL; user and password may be percent-encoded (``%40`` for ``@``)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise _invalid(url, str(error)) from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        reason = f"unknown scheme {scheme!r}" if scheme else "no scheme"
        raise _invalid(url, reason)
    if not parts.hostname:
        raise _invalid(url, "no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _invalid(url, "unexpected path, query or fragment")
    security, default_port = _SCHEMES[scheme]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise _invalid(url, "a password without a user name")
    if username is not None and security == "none":
        # AUTH over a plain connection would send the password in clear text.
        raise _invalid(url, "a user name needs smtp+starttls:// or smtps://")
    return SmtpRelay(
        host=parts.hostname,
        port=port if port is not None else default_port,
        security=security,
        username=username,
        password=password,
    )


def _invalid(url: str, reason: str) -> ConfigError:
    return ConfigError(f"EDM_SMTP_URL {_redacted(url)!r}: {reason}; expected {_EXAMPLES}")


def _redacted(url: str) -> str:
    scheme, separator, rest = url.strip().partition("://")
    netloc, slash, tail = rest.partition("/")
    credentials, at, host = netloc.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url.strip()
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"
