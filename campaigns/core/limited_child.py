"""Run a function on untrusted input in a child process with a CPU-time and memory limit.

Work in the caller's own process cannot be stopped once started: a thread cannot be killed, and a
CPU-bound thread holds the GIL that a server's event loop needs, so every other client waits for
it. So the work runs in a child process. A process with other threads (a server) forks it from a
fork server, started once with the modules named by :func:`preload_in_children` imported:
forking a threaded process can copy into the child a lock another thread held, which nothing
then releases. A process with one thread (a CLI command) forks itself: for its one call the fork
server's interpreter start-up would cost more than the work, and ``edm campaigns schedule`` is
timed to the first message. The child gets an interval timer on its CPU time, which raises
inside the running Python code (so the error can name where), ``RLIMIT_CPU`` one second later
in case it is stuck in C, and ``RLIMIT_AS`` against memory; the parent waits on a pipe, which
releases the GIL, and kills the child if it outlives a generous wall-clock deadline (the machine
may be busy, so wall time is not the limit).
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext
from types import FrameType
from typing import Any, TypeVar

Outcome = TypeVar("Outcome")

_WALL_TIME_PER_CPU_S = 10.0
_MIN_WALL_TIME_S = 30.0
_ALARM_REPEAT_S = 0.1

_processes = multiprocessing.get_context("forkserver")
_preloaded = [__name__]
_processes.set_forkserver_preload(_preloaded)
_fork = multiprocessing.get_context("fork")


def preload_in_children(module_name: str) -> None:
    """Have the fork server import ``module_name`` (before it starts), so children start warm."""
    if module_name not in _preloaded:
        _preloaded.append(module_name)
        _processes.set_forkserver_preload(list(_preloaded))


def run_limited(
    target: Callable[..., Outcome],
    args: tuple[Any, ...],
    *,
    cpu_limit_s: float,
    memory_limit_bytes: int,
    name: str,
    what: str,
    alarm: Callable[[str], BaseException],
) -> Outcome | None:
    """``target(*args)`` in a child process; None when the child was stopped or died.

    ``target`` and its arguments and result must pickle. When ``cpu_limit_s`` of CPU time is
    used, ``alarm("<what> took too long (limit N s of CPU)")`` is raised inside ``target`` (and
    again every 0.1 s, in case ``target`` catches it and tries another way); ``target`` may
    catch it and return an answer, else the child dies and the answer is None.
    """
    if cpu_limit_s <= 0:
        raise ValueError(f"cpu_limit_s: must be greater than 0, got {cpu_limit_s!r}")
    processes = _child_processes()
    receiver, sender = processes.Pipe(duplex=False)
    child = processes.Process(
        target=_run_in_child,
        args=(sender, target, args, cpu_limit_s, memory_limit_bytes, what, alarm),
        name=name,
        daemon=True,
    )
    child.start()
    sender.close()
    outcome: Outcome | None = None
    try:
        if receiver.poll(max(_MIN_WALL_TIME_S, cpu_limit_s * _WALL_TIME_PER_CPU_S)):
            try:
                outcome = receiver.recv()
            except EOFError:
                outcome = None  # killed by RLIMIT_CPU or the memory limit, or it raised
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    return outcome


def _child_processes() -> ForkContext | ForkServerContext:
    # With one thread, the caller is the only thread there is: no other can start while it forks.
    return _fork if threading.active_count() == 1 else _processes


def _run_in_child(
    sender: Connection,
    target: Callable[..., Any],
    args: tuple[Any, ...],
    cpu_limit_s: float,
    memory_limit_bytes: int,
    what: str,
    alarm: Callable[[str], BaseException],
) -> None:
    backstop_s = math.ceil(cpu_limit_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (backstop_s, backstop_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    def out_of_time(signal_number: int, frame: FrameType | None) -> None:
        raise alarm(f"{what} took too long (limit {cpu_limit_s:g} s of CPU)")

    signal.signal(signal.SIGPROF, out_of_time)
    signal.setitimer(signal.ITIMER_PROF, cpu_limit_s, _ALARM_REPEAT_S)
    try:
        outcome = target(*args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    sender.send(outcome)
    sender.close()
