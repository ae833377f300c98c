"""Dashboard passwords: long enough, not common, not one character repeated; each refusal names
its rule."""

from __future__ import annotations

import tomllib

import pytest

from campaigns.core.errors import InputError
from campaigns.core.settings import PROJECT_ROOT
from dashboard.password_rules import COMMON_PASSWORDS_FILE, check_password, common_passwords


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short1!", "at least 10 characters"),
        ("x" * 1025, "at most 1024 characters"),
        ("aaaaaaaaaa", "one character repeated"),
        ("          ", "one character repeated"),
        ("1234567890", "most common passwords"),
        ("Password1234", "most common passwords"),
        ("qwertyuiop", "most common passwords"),
        ("sunshine2024!", "most common passwords"),
        ("MONKEY1234567", "most common passwords"),
    ],
)
def test_a_weak_password_is_refused_naming_the_rule(password: str, rule: str) -> None:
    with pytest.raises(InputError, match=rule) as refused:
        check_password(password)
    assert str(refused.value).startswith("password: ")


@pytest.mark.parametrize(
    "password", ["correct horse battery", "aaaaaaaaab", "tram-lisbon-47-orange"]
)
def test_an_uncommon_long_password_is_accepted(password: str) -> None:
    check_password(password)


def test_thousands_of_common_passwords_ship_with_the_package() -> None:
    assert len(common_passwords()) > 5000
    assert {"password", "123456", "iloveyou"} <= common_passwords()
    package_data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["package-data"]["dashboard"]
    assert COMMON_PASSWORDS_FILE in package_data
