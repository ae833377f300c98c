"""Splitting long id lists for ``IN (...)`` clauses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# SQLite allows 32766 bound parameters, older builds 999: keep IN-lists well below.
IN_LIST_SIZE = 500


def chunked(items: Sequence[Any], size: int = IN_LIST_SIZE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
