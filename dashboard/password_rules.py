"""What a dashboard password must be: long enough, not one of the passwords guessers try first
(``common_passwords.txt``, shipped in the package), and not one character over and over."""

from __future__ import annotations

import functools
from importlib import resources

from campaigns.core.errors import InputError

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
COMMON_PASSWORDS_FILE = "common_passwords.txt"
# Guessers try a common word with digits or signs added ("sunshine2024!") right after the word.
_ADDED_AT_END = "0123456789!@#$%^&*()-_=+.?,;:~ "


@functools.cache
def common_passwords() -> frozenset[str]:
    text = resources.files("dashboard").joinpath(COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def check_password(password: str) -> None:
    """Raises ``InputError`` naming the rule the password breaks."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"password: at least {MIN_PASSWORD_CHARS} characters, please")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"password: at most {MAX_PASSWORD_CHARS} characters")
    if len(set(password)) == 1:
        raise InputError("password: one character repeated is guessed at once: choose another")
    lowered = password.lower()
    common = common_passwords()
    if lowered in common or lowered.rstrip(_ADDED_AT_END) in common:
        raise InputError(
            "password: it is one of the most common passwords (or one with digits added), "
            "which guessers try first: choose another"
        )
