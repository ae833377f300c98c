"""Bounds on what one template may make Jinja compute: numbers, text, loops and output.

Templates are user content and a preview renders them inside the web server, so a template
must not be able to ask for ``10 ** 10 ** 10``, ``'a' * 10 ** 9`` or a billion loop passes.
``BoundedSandbox`` checks the size of a result *before* computing it wherever an operator or a
filter takes a size as an argument: ``**``, ``*``, ``+`` and ``%`` are intercepted (which also
keeps Jinja from folding them at compile time: an intercepted operator is never a constant),
``range`` is capped and counted against a per-render budget, and the filters that pad or repeat
(``center``, ``indent``, ``format``, ``batch``, ``slice``, ``replace``) refuse sizes over the
limit. Method calls on strings (``'a'.ljust(n)``) are checked after the fact; what they cost is
bounded by the CPU and memory limits of ``isolated_render``.

Over a limit, ``TemplateLimitExceeded`` is raised inside the template's own code, so the error
names the line: ``body.html:3: exponent too large (limit 10000)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, cast

from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from campaigns.core.errors import TemplateError

MAX_EXPONENT = 10_000
MAX_INTEGER_BITS = 100_000
"""About 30,000 decimal digits: more than any count or amount a message shows."""
MAX_SEQUENCE_LENGTH = 1_000_000
"""Characters of one string, items of one list, made by an operator or filter."""
MAX_FORMAT_WIDTH = 10_000
MAX_RANGE_ITEMS = 10_000
MAX_RANGE_ITEMS_PER_RENDER = 100_000
"""Items all ``range`` loops of one render may produce together, nested loops included."""
MAX_OUTPUT_CHARS = 2_000_000
"""Characters one rendered part may have (2 MB of ASCII HTML; mail providers clip far sooner)."""

# printf-style conversions: flags, then a width and precision that may be numbers or "*".
_PRINTF_SPEC = re.compile(r"%(?:\([^)]{0,100}\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


class TemplateLimitExceeded(TemplateError):
    """A template asked for more work or memory than one message may take."""


class RenderCpuTimeExceeded(BaseException):
    """Raised by the CPU-time alarm of ``isolated_render``; not an ``Exception``, so that no
    ``except Exception`` in Jinja (constant folding catches everything) or a library swallows it.
    """


class RenderBudget:
    """What one render has used of the limits that add up over the render."""

    def __init__(self) -> None:
        self.range_items = 0

    def charge_range_items(self, count: int) -> None:
        self.range_items += count
        if self.range_items > MAX_RANGE_ITEMS_PER_RENDER:
            raise TemplateLimitExceeded(
                f"loops over range() ran too many times "
                f"(limit {MAX_RANGE_ITEMS_PER_RENDER} items per message)"
            )


_current_budget: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


def start_render_budget() -> Callable[[], None]:
    """Give the renders that follow in this thread a fresh budget; call the result to end it."""
    token = _current_budget.set(RenderBudget())
    return lambda: _current_budget.reset(token)


class BoundedRange:
    """``range`` of at most ``MAX_RANGE_ITEMS``, whose items count against the render budget."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE_ITEMS:
            raise TemplateLimitExceeded(f"range too long (limit {MAX_RANGE_ITEMS} items)")

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[int]:
        budget = _current_budget.get()
        for item in self._range:
            if budget is not None:
                budget.charge_range_items(1)
            yield item

    def __repr__(self) -> str:
        return repr(self._range)


def _check_length(length: int, what: str) -> None:
    if length > MAX_SEQUENCE_LENGTH:
        raise TemplateLimitExceeded(f"{what} too long (limit {MAX_SEQUENCE_LENGTH})")


def _check_bits(bits: int) -> None:
    if bits > MAX_INTEGER_BITS:
        raise TemplateLimitExceeded(f"number too large (limit {MAX_INTEGER_BITS} bits)")


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) <= 1:
        return  # floats overflow at once with an error; 0, 1 and -1 stay small
    if exponent > MAX_EXPONENT:
        raise TemplateLimitExceeded(f"exponent too large (limit {MAX_EXPONENT})")
    _check_bits(abs(base).bit_length() * exponent)


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        _check_bits(abs(left).bit_length() + abs(right).bit_length())
    elif _is_sequence(left) and isinstance(right, int):
        _check_length(len(left) * right, "repeated text or list")
    elif isinstance(left, int) and _is_sequence(right):
        _check_length(left * len(right), "repeated text or list")


def _check_sum(left: Any, right: Any) -> None:
    if _is_sequence(left) and _is_sequence(right):
        _check_length(len(left) + len(right), "joined text or list")


def check_format_string(template: str) -> None:
    """Refuse printf-style widths and precisions that would pad a string past the limits."""
    for match in _PRINTF_SPEC.finditer(template):
        for size in match.groups():
            if size == "*":
                raise TemplateLimitExceeded("format width taken from an argument (not allowed)")
            if size is not None and int(size) > MAX_FORMAT_WIDTH:
                raise TemplateLimitExceeded(f"format width too large (limit {MAX_FORMAT_WIDTH})")


def _check_modulo(left: Any, right: Any) -> None:
    if isinstance(left, str):
        check_format_string(left)


_OPERATOR_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "**": _check_power,
    "*": _check_product,
    "+": _check_sum,
    "%": _check_modulo,
}


def _bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    center, indent, format_, batch, slice_, replace = (
        filters[name] for name in ("center", "indent", "format", "batch", "slice", "replace")
    )

    def bounded_center(value: Any, width: int = 80) -> str:
        _check_length(int(width), "centered text")
        return str(center(value, width))

    def bounded_indent(value: Any, width: int | str = 4, *args: Any, **kwargs: Any) -> str:
        per_line = len(width) if isinstance(width, str) else int(width)
        _check_length(len(str(value)) + per_line * (str(value).count("\n") + 1), "indented text")
        return str(indent(value, width, *args, **kwargs))

    def bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
        check_format_string(str(value))
        return str(format_(value, *args, **kwargs))

    def bounded_batch(value: Any, linecount: int, *args: Any) -> Any:
        _check_length(int(linecount), "batch")
        return batch(value, linecount, *args)

    def bounded_slice(value: Any, slices: int, *args: Any) -> Any:
        _check_length(int(slices), "slice count")
        return slice_(value, slices, *args)

    def bounded_replace(eval_ctx: Any, value: Any, old: str, new: str, *args: Any) -> Any:
        text, old, new = str(value), str(old), str(new)
        _check_length(len(text) + text.count(old) * max(len(new) - len(old), 0), "replaced text")
        return replace(eval_ctx, value, old, new, *args)

    # Jinja passes the evaluation context to filters marked as wanting it, as replace is.
    bounded_replace.jinja_pass_arg = replace.jinja_pass_arg  # type: ignore[attr-defined]
    return {
        "center": bounded_center,
        "indent": bounded_indent,
        "format": bounded_format,
        "batch": bounded_batch,
        "slice": bounded_slice,
        "replace": bounded_replace,
    }


MAX_LIPSUM_PARAGRAPHS = 100
MAX_LIPSUM_WORDS = 1_000


def _bounded_lipsum(lipsum: Callable[..., str]) -> Callable[..., str]:
    def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if int(n) > MAX_LIPSUM_PARAGRAPHS or int(max) > MAX_LIPSUM_WORDS:
            raise TemplateLimitExceeded(
                f"lipsum: too long (limit {MAX_LIPSUM_PARAGRAPHS} paragraphs"
                f" of {MAX_LIPSUM_WORDS} words)"
            )
        return lipsum(n, html, min, max)

    return bounded_lipsum


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the limits of this module."""

    intercepted_binops = frozenset(_OPERATOR_CHECKS)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = BoundedRange
        self.globals["lipsum"] = _bounded_lipsum(cast(Callable[..., str], self.globals["lipsum"]))
        self.filters.update(_bounded_filters(self.filters))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _OPERATOR_CHECKS[operator](left, right)
        return self.binop_table[operator](left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        result = super().call(context, obj, *args, **kwargs)
        if _is_sequence(result):
            _check_length(len(result), "result of a call")
        return result
