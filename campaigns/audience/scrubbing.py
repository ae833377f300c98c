"""Taking an address out of free text: relay replies, event details, reports, URLs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, quote_plus

ERASED_TEXT = "[erased]"


class AddressScrubber:
    """Finds an address in text however it was written: any case, or percent-encoded in a URL."""

    def __init__(self, address: str) -> None:
        forms = {address, quote(address, safe=""), quote_plus(address), quote(address, safe="@")}
        alternatives = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
        self._pattern = re.compile(alternatives, re.IGNORECASE)
        self._bytes_pattern = re.compile(alternatives.encode(), re.IGNORECASE)

    def found_in(self, value: Any) -> bool:
        if isinstance(value, str):
            return self._pattern.search(value) is not None
        if isinstance(value, bytes):
            return self.found_in(value.decode("utf-8", "replace"))
        if isinstance(value, dict):
            return any(self.found_in(k) or self.found_in(v) for k, v in value.items())
        if isinstance(value, list):
            return any(self.found_in(item) for item in value)
        return False

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._pattern.sub(ERASED_TEXT, value)

    def raw(self, value: bytes) -> bytes:
        """Message bytes with the address replaced wherever it is written as is."""
        return self._bytes_pattern.sub(ERASED_TEXT.encode(), value)

    def json(self, value: Any) -> Any:
        """``value`` (JSON data) with the address replaced in every string, keys included."""
        if isinstance(value, str):
            return self._pattern.sub(ERASED_TEXT, value)
        if isinstance(value, dict):
            return {self._pattern.sub(ERASED_TEXT, k): self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value
