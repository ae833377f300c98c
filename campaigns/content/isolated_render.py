"""Render a template in a child process with a CPU-time and memory limit.

The sandbox limits (``template_limits``) refuse the costly operations they can see, but Jinja
does work no hook sees: an empty loop nested in a loop over a long string, a string method
running in C. A render in the web server's own process cannot be stopped once started: a thread
cannot be killed, and a CPU-bound thread holds the GIL the server's event loop needs, so every
other request (tracking, unsubscribe, webhooks) waits for it. So a preview or a scheduling check
renders in a child process. A process with other threads (the web server) forks it from a fork
server, started once with the templating modules imported: forking a threaded process can copy
into the child a lock another thread held, which nothing then releases. A process with one thread
(a CLI command) forks itself: for its one render the server's interpreter start-up would cost more
than the render, and an ``edm campaigns schedule`` is timed to the first message. The child gets an
interval timer on its CPU time, which raises inside the template's own code so the error names
the line, ``RLIMIT_CPU`` one second later in case it is stuck in C, and ``RLIMIT_AS`` against
memory; the parent waits on a pipe, which releases the GIL, and kills the child if it outlives
a generous wall-clock deadline (the machine may be busy, so wall time is not the limit).
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import signal
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext
from types import FrameType
from typing import Any

from campaigns.content.template_limits import RenderCpuTimeExceeded, TemplateLimitExceeded
from campaigns.content.templating import CompiledTemplate, RenderedMessage, TemplateSource
from campaigns.core.errors import TemplateError

DEFAULT_CPU_LIMIT_S = 2.0
MEMORY_LIMIT_BYTES = 2 * 1024**3
_WALL_TIME_PER_CPU_S = 10.0
_MIN_WALL_TIME_S = 30.0
_ALARM_REPEAT_S = 0.1

_FORK_SERVER = multiprocessing.get_context("forkserver")
_FORK_SERVER.set_forkserver_preload([__name__])
_FORK = multiprocessing.get_context("fork")


def render_isolated(
    source: TemplateSource,
    context: Mapping[str, Any],
    *,
    cpu_limit_s: float = DEFAULT_CPU_LIMIT_S,
) -> RenderedMessage:
    """``CompiledTemplate(source).render(context)``, compiled and rendered in a child process
    that may use ``cpu_limit_s`` of CPU time and ``MEMORY_LIMIT_BYTES`` of memory."""
    if cpu_limit_s <= 0:
        raise ValueError(f"cpu_limit_s: must be greater than 0, got {cpu_limit_s!r}")
    processes = _child_processes()
    receiver, sender = processes.Pipe(duplex=False)
    child = processes.Process(
        target=_render_in_child,
        args=(sender, source, dict(context), cpu_limit_s),
        name=f"render {source.name}",
        daemon=True,
    )
    child.start()
    sender.close()
    outcome: RenderedMessage | str | None = None
    try:
        if receiver.poll(max(_MIN_WALL_TIME_S, cpu_limit_s * _WALL_TIME_PER_CPU_S)):
            try:
                outcome = receiver.recv()
            except EOFError:
                outcome = None  # killed by RLIMIT_CPU or the memory limit
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if isinstance(outcome, RenderedMessage):
        return outcome
    if isinstance(outcome, str):
        raise TemplateError(outcome)
    raise TemplateLimitExceeded(
        f"{source.name}: rendering was stopped (limits {cpu_limit_s:g} s of CPU"
        f" and {MEMORY_LIMIT_BYTES // 1024**2} MB of memory)"
    )


def _child_processes() -> ForkContext | ForkServerContext:
    # With one thread, the caller is the only thread there is: no other can start while it forks.
    return _FORK if threading.active_count() == 1 else _FORK_SERVER


def _render_in_child(
    sender: Connection, source: TemplateSource, context: dict[str, Any], cpu_limit_s: float
) -> None:
    backstop_s = math.ceil(cpu_limit_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (backstop_s, backstop_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))

    def out_of_time(signal_number: int, frame: FrameType | None) -> None:
        raise RenderCpuTimeExceeded(f"rendering took too long (limit {cpu_limit_s:g} s of CPU)")

    signal.signal(signal.SIGPROF, out_of_time)
    # Repeating: a render that fails is retried another way (CSS inlined per message, say),
    # and that attempt must be stopped too.
    signal.setitimer(signal.ITIMER_PROF, cpu_limit_s, _ALARM_REPEAT_S)
    outcome: RenderedMessage | str
    try:
        try:
            outcome = CompiledTemplate(source).render(context)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except TemplateError as error:
        outcome = str(error)
    except RenderCpuTimeExceeded as error:
        # Outside the template's code (CSS inlining, the text part): no line to name.
        outcome = f"{source.name}: {error}"
    except MemoryError:
        outcome = f"{source.name}: out of memory (limit {MEMORY_LIMIT_BYTES // 1024**2} MB)"
    sender.send(outcome)
    sender.close()
