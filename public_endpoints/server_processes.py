"""One listening socket served by several processes: ``edm track --workers N``.

The parent binds the port, forks the processes that serve it (each accepts from the shared
socket, so the kernel spreads the connections) and starts a new one in place of one that ended
while it was not told to stop. Each process builds its own app after the fork: a database pool or
a Redis connection is never shared between processes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from campaigns.core.errors import InputError

log = logging.getLogger(__name__)

_BACKLOG = 2048
_RESTART_PAUSE_S = 1.0
"""Between a process ending and its replacement: a process that cannot start is not spun."""


def serve_in_processes(
    serve: Callable[[list[socket.socket]], None], *, host: str, port: int, processes: int
) -> None:
    """Run ``serve(sockets)`` in ``processes`` forked processes until SIGTERM or SIGINT."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=_BACKLOG)
    except OSError as error:
        raise InputError(
            f"--host/--port: cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
    children: set[int] = set()
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(processes):
        children.add(_start(serve, listener))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if not stopping:
            log.warning("serving process %d ended (wait status %d); starting another", pid, status)
            time.sleep(_RESTART_PAUSE_S)
            children.add(_start(serve, listener))
    listener.close()


def _start(serve: Callable[[list[socket.socket]], None], listener: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child: uvicorn installs its own handlers for a graceful stop.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 0
    try:
        serve([listener])
    except BaseException:
        log.exception("serving process %d failed", os.getpid())
        code = 1
    os._exit(code)
