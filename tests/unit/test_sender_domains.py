"""Test messages from the dashboard leave only From the installation's own domains."""

from __future__ import annotations

import pytest

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from dashboard.sender_domains import allowed_sender_domains, check_test_sender

SETTINGS = Settings(sender_domains="Northwind.example, mail.northwind.example.")


@pytest.mark.parametrize(
    "sender",
    [
        "news@northwind.example",
        "Northwind <News@NORTHWIND.example>",
        '"Northwind, Inc." <news@mail.northwind.example>',
    ],
)
def test_a_from_of_a_sender_domain_is_allowed(sender: str) -> None:
    check_test_sender(SETTINGS, sender, field="from_address")


@pytest.mark.parametrize(
    "sender",
    [
        "ceo@bank.example",
        "Northwind <news@evil.example>",
        "news@northwind.example.evil.example",
        "news@sub.northwind.example",
    ],
)
def test_a_from_of_another_domain_is_refused_naming_the_field(sender: str) -> None:
    with pytest.raises(InputError, match=r"^from_address: .* is not a sender domain"):
        check_test_sender(SETTINGS, sender, field="from_address")


def test_a_from_that_is_no_address_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError, match=r"^from_address: .*no @"):
        check_test_sender(SETTINGS, "Northwind", field="from_address")


def test_without_sender_domains_the_dkim_domain_is_the_one() -> None:
    settings = Settings(dkim_domain="northwind.example")
    assert allowed_sender_domains(settings) == {"northwind.example"}
    check_test_sender(settings, "news@northwind.example", field="from_address")


def test_with_no_domain_configured_every_test_message_is_refused() -> None:
    with pytest.raises(InputError, match=r"^from_address: test messages are off until"):
        check_test_sender(Settings(), "news@example.com", field="from_address")
