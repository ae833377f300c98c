"""Render a template in a child process with a CPU-time and memory limit.

The sandbox limits (``template_limits``) refuse the costly operations they can see, but Jinja
does work no hook sees: an empty loop nested in a loop over a long string, a string method
running in C. A render in the web server's own process cannot be stopped once started and holds
the GIL every other request (tracking, unsubscribe, webhooks) needs, so a preview or a
scheduling check renders in a limited child process (:mod:`campaigns.core.limited_child`),
whose CPU alarm raises inside the template's own code so the error names the line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaigns.content.template_limits import RenderCpuTimeExceeded, TemplateLimitExceeded
from campaigns.content.templating import CompiledTemplate, RenderedMessage, TemplateSource
from campaigns.core.errors import TemplateError
from campaigns.core.limited_child import preload_in_children, run_limited

DEFAULT_CPU_LIMIT_S = 2.0
MEMORY_LIMIT_BYTES = 2 * 1024**3

preload_in_children(__name__)


def render_isolated(
    template: CompiledTemplate,
    context: Mapping[str, Any],
    *,
    cpu_limit_s: float = DEFAULT_CPU_LIMIT_S,
) -> RenderedMessage:
    """``template.render(context)`` in a child process that may use ``cpu_limit_s`` of CPU time
    and ``MEMORY_LIMIT_BYTES`` of memory. A child forked from this process renders the compiled
    template it inherited; one from the fork server gets the template pickled, as its source,
    and compiles it again under the same limits."""
    source = template.source
    outcome = run_limited(
        _render_outcome,
        (_InheritedTemplate(template), dict(context)),
        cpu_limit_s=cpu_limit_s,
        memory_limit_bytes=MEMORY_LIMIT_BYTES,
        name=f"render {source.name}",
        what="rendering",
        alarm=RenderCpuTimeExceeded,
    )
    if isinstance(outcome, RenderedMessage):
        return outcome
    if isinstance(outcome, str):
        raise TemplateError(outcome)
    raise TemplateLimitExceeded(
        f"{source.name}: rendering was stopped (limits {cpu_limit_s:g} s of CPU"
        f" and {MEMORY_LIMIT_BYTES // 1024**2} MB of memory)"
    )


class _InheritedTemplate:
    """A compiled template as a child gets it: a forked child inherits this object, compiled;
    pickled for the fork server it is only the source, compiled in the child under its limits
    (unpickling happens before they are set)."""

    def __init__(self, template: CompiledTemplate) -> None:
        self.template = template

    def __reduce__(self) -> tuple[type[TemplateSource], tuple[str, str, str, str | None]]:
        source = self.template.source
        return TemplateSource, (source.name, source.subject, source.html, source.text)


def _render_outcome(
    inherited: _InheritedTemplate | TemplateSource, context: dict[str, Any]
) -> RenderedMessage | str:
    """The rendered message, or the one-line error (a render that fails is retried another
    way, CSS inlined per message, say, and the repeating CPU alarm stops that attempt too)."""
    source = inherited if isinstance(inherited, TemplateSource) else inherited.template.source
    try:
        if isinstance(inherited, TemplateSource):
            return CompiledTemplate(inherited).render(context)
        return inherited.template.render(context)
    except TemplateError as error:
        return str(error)
    except RenderCpuTimeExceeded as error:
        # Outside the template's code (CSS inlining, the text part): no line to name.
        return f"{source.name}: {error}"
    except MemoryError:
        return f"{source.name}: out of memory (limit {MEMORY_LIMIT_BYTES // 1024**2} MB)"
