"""DKIM keys as `edm dkim keygen` makes them, and the DNS record it prints, for the DKIM tests."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import dkim

from campaigns.content.dkim import DkimSigner
from campaigns.content.dkim_keys import load_private_key
from edm.cli import main
from tests.conftest import run_edm

DOMAIN = "example.com"
SELECTOR = "edm2026"


def plain_env(tmp_path: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment["EDM_DATA_DIR"] = str(tmp_path / "data")
    return environment


class PublishedKey:
    """A key made by ``edm dkim keygen`` and the TXT record it printed, as DNS would serve it."""

    def __init__(self, key_file: Path, name: str, strings: list[str]) -> None:
        self.key_file = key_file
        self.name = name
        # A resolver joins a TXT record's character-strings into one value.
        self.txt = "".join(strings).encode()

    def dns(self, name: bytes, timeout: int = 5) -> bytes:
        assert name.decode().rstrip(".") == self.name
        return self.txt

    def signer(self) -> DkimSigner:
        return DkimSigner(load_private_key(self.key_file), domain=DOMAIN, selector=SELECTOR)

    def verifies(self, message: bytes) -> bool:
        return bool(dkim.verify(message, dnsfunc=self.dns))


def keygen(tmp_path: Path, key_type: str) -> PublishedKey:
    """A key made by ``edm dkim keygen`` in a process of its own, as a person runs it."""
    key_file = tmp_path / f"{key_type}.pem"
    result = run_edm(_keygen_args(key_file, key_type), plain_env(tmp_path))
    assert result.returncode == 0, result.stderr
    return _published(key_file, result.stdout)


def keygen_in_process(tmp_path: Path, key_type: str) -> PublishedKey:
    """The same command line run in this process: the unit tier starts no processes."""
    key_file = tmp_path / f"{key_type}.pem"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(_keygen_args(key_file, key_type), plain_env(tmp_path))
    return _published(key_file, printed.getvalue())


def _keygen_args(key_file: Path, key_type: str) -> list[str]:
    return [
        "dkim",
        "keygen",
        "--selector",
        SELECTOR,
        "--domain",
        DOMAIN,
        "--type",
        key_type,
        "--out",
        str(key_file),
    ]


def _published(key_file: Path, printed: str) -> PublishedKey:
    name = re.search(r"name: +(\S+)", printed)
    value = re.search(r"value: +(.+)", printed)
    assert name is not None and value is not None, printed
    strings = re.findall(r'"([^"]*)"', value.group(1))
    assert all(len(string) <= 255 for string in strings)
    return PublishedKey(key_file, name.group(1), strings)
