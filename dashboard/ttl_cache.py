"""Results kept for a few seconds, computed once however many requests ask at the same time.

For what is costly to compute and needs not be newer than a few seconds (a chart over a million
jobs, polled by every open campaign page).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class TtlCache:
    """``clock`` gives the time in seconds that entries expire by (tests pass a fake one)."""

    def __init__(
        self, *, ttl_s: float, max_entries: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        found = self._fresh(key)
        if found is not None:
            return found[0]
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            # Another request may have computed it while this one waited.
            found = self._fresh(key)
            if found is not None:
                return found[0]
            value = compute()
            with self._lock:
                if len(self._values) >= self._max_entries:
                    self._values.clear()
                self._values[key] = (self._clock() + self._ttl_s, value)
            return value

    def _fresh(self, key: Hashable) -> tuple[Any] | None:
        with self._lock:
            entry = self._values.get(key)
        if entry is None or entry[0] < self._clock():
            return None
        return (entry[1],)
