"""Signing, the retry schedule, destinations and event names of outgoing webhooks."""

from __future__ import annotations

import hashlib
import hmac
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaigns.core.errors import InputError
from campaigns.webhooks.backoff import RetrySchedule
from campaigns.webhooks.destinations import UnsafeDestination, check_destination, checked_url
from campaigns.webhooks.endpoints import parse_event_names
from campaigns.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def verify(secret: str, headers: dict[str, str], body: bytes, now_s: int, tolerance_s: int) -> bool:
    """What the README tells a receiver to do."""
    timestamp = headers[TIMESTAMP_HEADER]
    if abs(now_s - int(timestamp)) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("v1=" + expected.hexdigest(), headers[SIGNATURE_HEADER])


def test_a_signature_verifies_over_timestamp_and_body() -> None:
    body = b'{"events":[]}'
    headers = signed_headers("whsec_k", 1_700_000_000, body)
    assert verify("whsec_k", headers, body, 1_700_000_010, 300)


def test_a_changed_body_timestamp_or_secret_does_not_verify() -> None:
    body = b'{"events":[]}'
    headers = signed_headers("whsec_k", 1_700_000_000, body)
    assert not verify("whsec_k", headers, body + b" ", 1_700_000_000, 300)
    assert not verify("whsec_other", headers, body, 1_700_000_000, 300)
    moved = {**headers, TIMESTAMP_HEADER: "1700000001"}
    assert not verify("whsec_k", moved, body, 1_700_000_000, 300)


def test_an_old_timestamp_is_refused_even_with_a_good_signature() -> None:
    body = b"{}"
    headers = signed_headers("whsec_k", 1_700_000_000, body)
    assert not verify("whsec_k", headers, body, 1_700_000_000 + 301, 300)


def test_retry_delays_double_up_to_the_cap() -> None:
    schedule = RetrySchedule(first_delay_s=5, max_delay_s=60, pause_after_s=3600)
    assert [schedule.delay_s(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert schedule.delay_s(10_000) == 60
    assert schedule.next_attempt_at(2, NOW) == NOW + timedelta(seconds=10)


def test_the_default_schedule_keeps_trying_for_a_day_then_pauses() -> None:
    schedule = RetrySchedule()
    failing_since = NOW
    now, failures = NOW, 0
    while not schedule.should_pause(failing_since, now):
        failures += 1
        now = schedule.next_attempt_at(failures, now)
    assert now - failing_since >= timedelta(hours=24)
    assert 20 <= failures <= 40


def test_retry_delays_must_be_positive_and_ordered() -> None:
    with pytest.raises(ValueError, match="first"):
        RetrySchedule(first_delay_s=10, max_delay_s=5)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("https:///path", "no host"),
        ("https://example.com/a b", "spaces or control"),
        ("https://example.com:99999/", "out of range"),
        ("https://example.com/" + "a" * 2000, "longer than"),
    ],
)
def test_urls_other_than_http_with_a_host_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        checked_url(url)


def _resolving_to(*addresses: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses
        ]

    return resolve


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254", "::1", "0.0.0.0"]
)
def test_private_and_loopback_destinations_are_refused_by_default(address: str) -> None:
    with pytest.raises(UnsafeDestination, match="EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE"):
        check_destination(
            "https://hooks.example.com/", allow_private=False, resolve=_resolving_to(address)
        )


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(UnsafeDestination):
        check_destination(
            "https://hooks.example.com/",
            allow_private=False,
            resolve=_resolving_to("93.184.216.34", "10.0.0.1"),
        )


def test_a_literal_private_address_and_an_ipv4_mapped_one_are_refused() -> None:
    for url in ("http://127.0.0.1:8080/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(UnsafeDestination):
            check_destination(url, allow_private=False, resolve=_resolving_to())


def test_public_destinations_pass_and_the_setting_allows_private_ones() -> None:
    check_destination(
        "https://hooks.example.com/", allow_private=False, resolve=_resolving_to("93.184.216.34")
    )
    check_destination("http://127.0.0.1:8080/", allow_private=True, resolve=_resolving_to())


def test_event_names_are_checked_and_deduplicated() -> None:
    assert parse_event_names("sent, opened,sent") == ["sent", "opened"]
    with pytest.raises(InputError, match="unknown event 'delivered'"):
        parse_event_names("sent,delivered")
    with pytest.raises(InputError, match="at least one"):
        parse_event_names(" , ")
