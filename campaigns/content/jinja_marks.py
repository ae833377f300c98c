"""Jinja constructs swapped for inert markers, so a template's HTML can be transformed once per
campaign (converted to text, CSS inlined) and the constructs put back afterwards."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

JINJA_CONSTRUCT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Private-use characters: no template has a reason to contain them, and HTML parsers, CSS
# inliners and html2text pass them through untouched as parts of a word.
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
MARK = re.compile(f"{MARK_OPEN}(\\d+){MARK_CLOSE}")


def marker(index: int) -> str:
    return f"{MARK_OPEN}{index}{MARK_CLOSE}"


@dataclass(frozen=True)
class MarkedTemplate:
    """``text`` is the template with construct ``i`` replaced by ``marker(i)``."""

    text: str
    constructs: list[str]

    @classmethod
    def of(
        cls, template: str, rewrite: Callable[[str], str] = lambda construct: construct
    ) -> MarkedTemplate | None:
        """None when the template already holds marker characters. ``rewrite`` changes each
        construct as it is stored."""
        if MARK_OPEN in template or MARK_CLOSE in template:
            return None
        constructs: list[str] = []

        def mark(match: re.Match[str]) -> str:
            constructs.append(rewrite(match.group()))
            return marker(len(constructs) - 1)

        return cls(JINJA_CONSTRUCT.sub(mark, template), constructs)

    def restore(self, transformed: str) -> str:
        return MARK.sub(lambda match: self.constructs[int(match.group(1))], transformed)


def surviving_marks(transformed: str) -> list[int]:
    return [int(index) for index in MARK.findall(transformed)]
