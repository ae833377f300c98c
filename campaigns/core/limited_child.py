"""Run a function on untrusted input in a child process with a CPU-time and memory limit.

Work in the caller's own process cannot be stopped once started: a thread cannot be killed, and a
CPU-bound thread holds the GIL that a server's event loop needs, so every other client waits for
it. So the work runs in a child process. A process with other threads (a server) gets it from a
fork server, started once with the modules named by :func:`preload_in_children` imported:
forking a threaded process can copy into the child a lock another thread held, which nothing
then releases. Such a child is kept warm and runs one call after another (a fork-server start
per call cost a server more than the call itself), one child per CPU at most while other calls
wait: each call gets its own CPU alarm and ``RLIMIT_CPU`` set past the CPU the child has used
so far, and a child whose call was stopped, died or reached ``_CALLS_PER_CHILD`` is not used
again.
A process with one thread (a CLI command) forks itself: for its one call the fork
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
import os
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any, TypeVar

Outcome = TypeVar("Outcome")

_WALL_TIME_PER_CPU_S = 10.0
_MIN_WALL_TIME_S = 30.0
_ALARM_REPEAT_S = 0.1

_processes = multiprocessing.get_context("forkserver")
_CALLS_PER_CHILD = 1000
"""A warm child is retired after this many calls, so what a call leaves behind stays bounded."""
_WARM_CHILDREN = max(2, os.cpu_count() or 1)
"""Warm children per memory limit; more calls at once wait for one to be free. The work is
CPU-bound, so more children than CPUs would not finish sooner, and a burst of requests would
otherwise start (and throw away) a child each."""

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
    wall_time_s = max(_MIN_WALL_TIME_S, cpu_limit_s * _WALL_TIME_PER_CPU_S)
    if threading.active_count() > 1:
        return _warm_call((target, args, cpu_limit_s, what, alarm), memory_limit_bytes, wall_time_s)
    receiver, sender = _fork.Pipe(duplex=False)
    child = _fork.Process(
        target=_run_in_child,
        args=(sender, target, args, cpu_limit_s, memory_limit_bytes, what, alarm),
        name=name,
        daemon=True,
    )
    child.start()
    sender.close()
    outcome: Outcome | None = None
    try:
        if receiver.poll(wall_time_s):
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


Call = tuple[Callable[..., Any], tuple[Any, ...], float, str, Callable[[str], BaseException]]
"""What a warm child is sent: target, args, cpu_limit_s, what, alarm."""


class _WarmChild:
    """A fork-server child that runs calls one after another until one is stopped."""

    def __init__(self, memory_limit_bytes: int) -> None:
        self.connection, child_end = _processes.Pipe(duplex=True)
        self.process = _processes.Process(
            target=_serve_calls,
            args=(child_end, memory_limit_bytes),
            name="limited child",
            daemon=True,
        )
        self.process.start()
        child_end.close()

    def call(self, call: Call, wall_time_s: float) -> tuple[Any, bool]:
        """The outcome (None when the child was stopped or died), and whether it may serve on."""
        try:
            self.connection.send(call)
            if not self.connection.poll(wall_time_s):
                return None, False
            outcome, serves_on = self.connection.recv()
        except (EOFError, OSError):
            return None, False  # killed by RLIMIT_CPU or the memory limit, or it raised
        return outcome, bool(serves_on)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.connection.close()


class _WarmChildren:
    """At most ``_WARM_CHILDREN`` children of one memory limit, each serving one call at a time."""

    def __init__(self, memory_limit_bytes: int) -> None:
        self.memory_limit_bytes = memory_limit_bytes
        self.free = threading.BoundedSemaphore(_WARM_CHILDREN)
        self.idle: list[_WarmChild] = []
        self.lock = threading.Lock()

    def call(self, call: Call, wall_time_s: float) -> Any:
        with self.free:
            with self.lock:
                child = self.idle.pop() if self.idle else None
            if child is None:
                child = _WarmChild(self.memory_limit_bytes)
            outcome, serves_on = child.call(call, wall_time_s)
            if serves_on:
                with self.lock:
                    self.idle.append(child)
            else:
                child.stop()
        return outcome


_pools: dict[int, _WarmChildren] = {}
_pools_lock = threading.Lock()


def _warm_call(call: Call, memory_limit_bytes: int, wall_time_s: float) -> Any:
    with _pools_lock:
        pool = _pools.get(memory_limit_bytes)
        if pool is None:
            pool = _pools[memory_limit_bytes] = _WarmChildren(memory_limit_bytes)
    return pool.call(call, wall_time_s)


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


def _serve_calls(connection: Connection, memory_limit_bytes: int) -> None:
    """A warm child's loop: each call under its own CPU alarm and ``RLIMIT_CPU``; the child
    leaves after a call the alarm interrupted (its state may be half-changed) or after
    ``_CALLS_PER_CHILD`` calls."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    _, hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)
    current: dict[str, Any] = {}

    def out_of_time(signal_number: int, frame: FrameType | None) -> None:
        current["alarmed"] = True
        raise current["alarm"](current["message"])

    signal.signal(signal.SIGPROF, out_of_time)
    for calls in range(1, _CALLS_PER_CHILD + 1):
        try:
            target, args, cpu_limit_s, what, alarm = connection.recv()
        except EOFError:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        backstop_s = math.ceil(usage.ru_utime + usage.ru_stime + cpu_limit_s) + 1
        if hard_cpu != resource.RLIM_INFINITY:
            backstop_s = min(backstop_s, hard_cpu)
        resource.setrlimit(resource.RLIMIT_CPU, (backstop_s, hard_cpu))
        current.update(
            alarmed=False,
            alarm=alarm,
            message=f"{what} took too long (limit {cpu_limit_s:g} s of CPU)",
        )
        signal.setitimer(signal.ITIMER_PROF, cpu_limit_s, _ALARM_REPEAT_S)
        try:
            outcome = target(*args)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        serves_on = not current["alarmed"] and calls < _CALLS_PER_CHILD
        connection.send((outcome, serves_on))
        if not serves_on:
            return
