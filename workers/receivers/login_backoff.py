"""Failed SMTP logins counted per client address: past a few, the address waits before it may
try again, twice as long after each further failure.

Kept in the server process (each ``edm submit serve`` process counts its own): a guesser that
reconnects to get a fresh connection's attempts still meets its address's wait. Bounded in
memory: the addresses seen longest ago are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 6
"""Failures an address may make before it waits: two connections' worth of typos."""
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 300.0
FORGET_AFTER_S = 3600.0
MAX_ADDRESSES = 10_000


@dataclass
class _Failures:
    count: int
    last_at: float


class LoginBackoff:
    def __init__(
        self,
        *,
        free_failures: int = FREE_FAILURES,
        first_wait_s: float = FIRST_WAIT_S,
        max_wait_s: float = MAX_WAIT_S,
        forget_after_s: float = FORGET_AFTER_S,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free_failures = free_failures
        self._first_wait_s = first_wait_s
        self._max_wait_s = max_wait_s
        self._forget_after_s = forget_after_s
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def wait_s(self, address: str) -> float:
        """Seconds before ``address`` may try a login again; 0 when it may now."""
        failures = self._current(address)
        if failures is None or failures.count < self._free_failures:
            return 0.0
        excess = failures.count - self._free_failures
        wait_s = min(self._first_wait_s * 2.0 ** min(excess, 32), self._max_wait_s)
        return max(0.0, failures.last_at + wait_s - self._clock())

    def failed(self, address: str) -> None:
        failures = self._current(address)
        now = self._clock()
        if failures is None:
            failures = self._failures[address] = _Failures(count=0, last_at=now)
        failures.count += 1
        failures.last_at = now
        self._failures.move_to_end(address)
        while len(self._failures) > self._max_addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _current(self, address: str) -> _Failures | None:
        failures = self._failures.get(address)
        if failures is not None and self._clock() - failures.last_at > self._forget_after_s:
            del self._failures[address]
            return None
        return failures
