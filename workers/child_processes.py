"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType


def die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies; None elsewhere.

    Everything is resolved before fork, so the child only makes two system calls. Linux ties
    the signal to the thread that forked, not the process: a server started from a pool thread
    would die with that thread, so only the main thread asks for it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    parent_pid = os.getpid()

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        # The parent may already have died between fork and prctl.
        if os.getppid() != parent_pid:
            os._exit(1)

    return die_with_parent


def stop_event_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: a child's loop waits on it and ends its pass cleanly
    instead of dying in the middle of a transaction."""
    stop = threading.Event()

    def request_stop(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


@contextlib.contextmanager
def python_module_running(module: str, *, stop_timeout_s: float) -> Iterator[None]:
    """``python -m module`` in a child process while inside: asked to stop with SIGTERM on the
    way out, killed if it has not stopped within ``stop_timeout_s``, and never left running
    after this process dies."""
    process = subprocess.Popen([sys.executable, "-m", module], preexec_fn=die_with_parent_hook())
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
