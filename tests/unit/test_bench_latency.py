"""The transactional benchmark's latency figures: nearest-rank percentiles of matched times."""

from __future__ import annotations

import pytest

from bench.latency import percentile, summarise


def test_the_percentile_is_a_value_observed_at_its_nearest_rank() -> None:
    values = [float(value) for value in range(1000, 0, -1)]
    assert percentile(values, 0.50) == 500.0
    assert percentile(values, 0.99) == 990.0
    assert percentile(values, 1.0) == 1000.0
    assert percentile([7.0], 0.99) == 7.0
    # Two values: the median is the lower one, p99 the higher.
    assert percentile([3.0, 1.0], 0.5) == 1.0
    assert percentile([3.0, 1.0], 0.99) == 3.0


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.01])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], fraction)


def test_no_values_have_no_percentile() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_latencies_match_acceptance_and_arrival_by_recipient_and_count_the_missing() -> None:
    accepted = {"a@tx": 10.0, "b@tx": 10.5, "c@tx": 11.0}
    arrived = {"b@tx": 10.6, "a@tx": 10.02, "other@tx": 99.0}
    summary = summarise(accepted, arrived)
    assert (summary.accepted, summary.arrived, summary.missing) == (3, 2, 1)
    assert summary.p50_ms == pytest.approx(20.0)
    assert summary.p99_ms == summary.max_ms == pytest.approx(100.0)


def test_nothing_arrived_gives_no_latency() -> None:
    summary = summarise({"a@tx": 1.0}, {})
    assert (summary.missing, summary.p50_ms, summary.p99_ms) == (1, None, None)
