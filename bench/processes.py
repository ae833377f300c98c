"""Child processes of the benchmark: each in its own session, so stopping one stops its children
(Celery's pool, the dispatcher) and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_logged(
    command: Sequence[str], *, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            list(command),
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def end_process(
    process: subprocess.Popen[bytes], first_signal: int = signal.SIGTERM, *, timeout_s: float = 20
) -> None:
    """Signal the process's group, then kill the group if it outlives ``timeout_s``."""
    if process.poll() is not None:
        return
    _signal_group(process, first_signal)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
    try:
        os.killpg(process.pid, signal_number)
    except ProcessLookupError:
        # Not a group leader (started without a session of its own): signal it alone.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal_number)


def log_tail(log_path: Path, lines: int = 5) -> str:
    try:
        text = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])


def wait_for_log_line(
    process: subprocess.Popen[bytes],
    log_path: Path,
    marker: str,
    *,
    timeout_s: float,
    occurrences: int = 1,
) -> None:
    """Wait until ``marker`` appears ``occurrences`` times in the log; RuntimeError if the
    process exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{log_path.name}: exited with code {process.returncode}: {log_tail(log_path)}"
            )
        with contextlib.suppress(OSError):
            if log_path.read_text(errors="replace").count(marker) >= occurrences:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"{log_path.name}: {marker!r} fewer than {occurrences} times within {timeout_s:g} s"
    )
