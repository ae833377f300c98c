"""Small parts of the dashboard on their own: charts, the short-lived cache, schedule plans,
safe redirects after signing in."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.core.errors import InputError
from campaigns.lifecycle.schedule_requests import schedule_plan
from dashboard.auth_pages import safe_next
from dashboard.campaign_queries import Bucket
from dashboard.charts import events_chart, sends_chart
from dashboard.ttl_cache import TtlCache

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_the_sends_chart_draws_a_bar_per_minute_with_gaps_as_zeros() -> None:
    buckets = [Bucket(START, 10), Bucket(START + timedelta(minutes=12), 40)]
    svg = str(sends_chart(buckets))
    assert svg.startswith("<svg")
    assert svg.count('<rect class="bar"') == 13
    assert "2026-11-27 09:12 UTC: 40" in svg
    assert str(sends_chart([])) == ""


def test_the_events_chart_draws_a_line_per_kind() -> None:
    series = {
        "opened": [Bucket(START, 5), Bucket(START + timedelta(hours=2), 9)],
        "clicked": [Bucket(START + timedelta(hours=1), 1)],
    }
    svg = str(events_chart(series))
    assert svg.count("<polyline") == 2
    assert str(events_chart({"opened": [], "clicked": []})) == ""


def test_labels_in_charts_are_escaped() -> None:
    assert "<script" not in str(sends_chart([Bucket(START, 1)]))


def test_the_cache_computes_once_for_requests_at_the_same_time_and_expires() -> None:
    now_s = [100.0]
    cache = TtlCache(ttl_s=8, clock=lambda: now_s[0])
    calls = []

    def slow() -> int:
        calls.append(1)
        # Long enough for the other requests to arrive while this one computes.
        time.sleep(0.1)
        return len(calls)

    threads = [threading.Thread(target=cache.get, args=("k", slow)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert cache.get("k", slow) == 1
    now_s[0] += 8
    assert cache.get("k", slow) == 1
    now_s[0] += 0.01
    assert cache.get("k", slow) == 2


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/campaigns/3", "/campaigns/3"),
        ("/lists?x=1", "/lists?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/login?next=/login", "/"),
    ],
)
def test_after_signing_in_only_paths_on_this_site_are_followed(path: str, expected: str) -> None:
    assert safe_next(path) == expected


def test_schedule_plans() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert (
        schedule_plan(
            "now", at=None, timezone="UTC", timezone_field="tz", spread_hours=2, now=now
        ).send_at
        == now
    )
    at = schedule_plan(
        "at", at="2026-06-01T09:00", timezone="America/New_York", timezone_field="", spread_hours=0
    )
    assert at.send_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    local = schedule_plan(
        "local_time", at="2026-06-01T09:00", timezone="UTC", timezone_field="zone", spread_hours=5
    )
    assert local.local_time is not None and local.local_time.timezone_field == "zone"
    assert local.spread_hours == 0.0
    with pytest.raises(InputError, match="timezone_field"):
        schedule_plan(
            "local_time", at="2026-06-01T09:00", timezone="UTC", timezone_field=" ", spread_hours=0
        )
