"""DKIM keys: generating one, loading the configured one, and the DNS record that publishes it."""

from __future__ import annotations

import base64
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from campaigns.content.dkim import DkimSigner, PrivateKey, checked_dns_name
from campaigns.core.errors import ConfigError, InputError
from campaigns.core.private_files import create_private_file, make_private_directory
from campaigns.core.settings import Settings

KeyType = Literal["rsa", "ed25519"]
RSA_BITS = 2048
DNS_STRING_CHARS = 255
"""Longest character-string in a TXT record; longer values are published as several strings."""


@dataclass(frozen=True)
class DkimDnsRecord:
    name: str
    """``selector._domainkey.domain``"""
    value: str
    """``v=DKIM1; k=...; p=...`` as one string."""

    @property
    def strings(self) -> list[str]:
        """The value split into TXT character-strings; resolvers hand them back joined."""
        return [
            self.value[start : start + DNS_STRING_CHARS]
            for start in range(0, len(self.value), DNS_STRING_CHARS)
        ]

    def zone_value(self) -> str:
        """The value as a zone file or DNS console takes it: quoted strings side by side."""
        return " ".join(f'"{string}"' for string in self.strings)


def signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The signer the settings ask for; None when DKIM is not configured.

    Raises ConfigError, one line, when only some of the three settings are given or the key
    file cannot be read or used.
    """
    given = {
        "EDM_DKIM_DOMAIN": settings.dkim_domain,
        "EDM_DKIM_SELECTOR": settings.dkim_selector,
        "EDM_DKIM_KEY_FILE": settings.dkim_key_file,
    }
    missing = [name for name, value in given.items() if not value]
    if len(missing) == len(given):
        return None
    if missing:
        present = [name for name in given if name not in missing]
        raise ConfigError(
            f"{', '.join(present)} set but {', '.join(missing)} not: DKIM needs all three"
        )
    domain = checked_dns_name(settings.dkim_domain, "EDM_DKIM_DOMAIN")
    selector = checked_dns_name(settings.dkim_selector, "EDM_DKIM_SELECTOR")
    key = load_private_key(Path(settings.dkim_key_file).expanduser())
    return DkimSigner(key, domain=domain, selector=selector)


def load_private_key(path: Path) -> PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"EDM_DKIM_KEY_FILE {path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"EDM_DKIM_KEY_FILE {path}: cannot read: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"EDM_DKIM_KEY_FILE {path}: the key is encrypted; give an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"EDM_DKIM_KEY_FILE {path}: not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | Ed25519PrivateKey):
        raise ConfigError(f"EDM_DKIM_KEY_FILE {path}: not an RSA or Ed25519 key")
    return key


def generate_private_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "ed25519":
        return Ed25519PrivateKey.generate()
    raise InputError(f"--type: {key_type!r} is not rsa or ed25519")


def dns_record(key: PrivateKey, *, selector: str, domain: str) -> DkimDnsRecord:
    selector = checked_dns_name(selector, "DKIM selector", InputError)
    domain = checked_dns_name(domain, "DKIM domain", InputError)
    public_key = key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        key_tag = "rsa"
        public_bytes = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        # RFC 8463: the bare 32-byte key, not wrapped in SubjectPublicKeyInfo.
        key_tag = "ed25519"
        public_bytes = public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    encoded = base64.b64encode(public_bytes).decode("ascii")
    return DkimDnsRecord(
        name=f"{selector}._domainkey.{domain}", value=f"v=DKIM1; k={key_tag}; p={encoded}"
    )


def write_private_key(key: PrivateKey, path: Path) -> None:
    """Write ``key`` as PEM to ``path``, readable by its owner only; never over an existing file.

    The key is written to a temporary file and linked into place, so ``path`` either does not
    exist or holds the whole key.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if path.exists():
        raise InputError(f"{path}: already exists; not overwriting a key (choose another --out)")
    try:
        make_private_directory(path.parent)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        key_file = create_private_file(temporary)
    except OSError as error:
        raise InputError(f"{path}: cannot write: {error.strerror}") from None
    try:
        with key_file:
            key_file.write(pem)
            key_file.flush()
            os.fsync(key_file.fileno())
        os.link(temporary, path)
    except FileExistsError:
        raise InputError(
            f"{path}: already exists; not overwriting a key (choose another --out)"
        ) from None
    except OSError as error:
        raise InputError(f"{path}: cannot write: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
