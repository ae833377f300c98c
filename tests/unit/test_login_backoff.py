"""Failed SMTP logins per client address: free at first, then waits that double, up to a cap;
forgotten after a quiet hour, and never more addresses kept than the bound."""

from __future__ import annotations

from workers.receivers.login_backoff import LoginBackoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_after_its_free_failures_twice_as_long_each_time() -> None:
    clock = Clock()
    backoff = LoginBackoff(free_failures=3, first_wait_s=1.0, max_wait_s=8.0, clock=clock)
    for _ in range(2):
        backoff.failed("192.0.2.1")
    assert backoff.wait_s("192.0.2.1") == 0.0
    waits = []
    for _ in range(6):
        backoff.failed("192.0.2.1")
        waits.append(backoff.wait_s("192.0.2.1"))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    clock.now += 5.0
    assert backoff.wait_s("192.0.2.1") == 3.0
    # Another address is not held by this one's failures.
    assert backoff.wait_s("192.0.2.2") == 0.0


def test_a_success_or_a_quiet_hour_clears_an_address() -> None:
    clock = Clock()
    backoff = LoginBackoff(free_failures=1, forget_after_s=3600.0, clock=clock)
    backoff.failed("192.0.2.1")
    backoff.failed("192.0.2.3")
    assert backoff.wait_s("192.0.2.1") > 0
    backoff.succeeded("192.0.2.1")
    assert backoff.wait_s("192.0.2.1") == 0.0
    clock.now += 3601.0
    assert backoff.wait_s("192.0.2.3") == 0.0


def test_memory_is_bounded_by_forgetting_the_oldest_addresses() -> None:
    backoff = LoginBackoff(free_failures=1, max_addresses=100, clock=Clock())
    for number in range(1000):
        backoff.failed(f"10.0.{number // 256}.{number % 256}")
    assert backoff.wait_s("10.0.0.0") == 0.0  # forgotten
    assert backoff.wait_s("10.0.3.231") > 0  # the last one
    assert len(backoff._failures) == 100
