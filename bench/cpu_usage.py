"""CPU time spent during a measurement, per group of processes and for the whole machine.

On a 2-core machine shared with other work, messages per second depend on what else runs;
CPU milliseconds per message do much less, and they say which process is the bottleneck.
Read from /proc (Linux); elsewhere every figure is empty.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")

Classifier = Callable[[int, str], str | None]
"""(pid, command line) -> group name, or None to leave the process out."""


@dataclass(frozen=True)
class CpuSnapshot:
    by_group: dict[str, float]
    """CPU seconds (user + system) each group has used since its processes started."""
    machine_busy_s: float
    """CPU seconds the whole machine was busy since boot, all cores together."""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return text[text.rfind(")") + 2 :].split()


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def descendants(root_pids: list[int]) -> list[int]:
    """The given processes and all their descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid for pid in root_pids if (_PROC / str(pid)).exists()]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def pids_with_command(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment`` (e.g. PostgreSQL backends of one
    database, which are the server's children, not ours)."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and fragment in _cmdline(int(entry.name)):
            found.append(int(entry.name))
    return found


def snapshot(root_pids: list[int], classify: Classifier) -> CpuSnapshot:
    by_group: dict[str, float] = {}
    for pid in descendants(root_pids):
        group = classify(pid, _cmdline(pid))
        fields = _stat_fields(pid)
        if group is None or fields is None:
            continue
        # Fields 14 and 15 of /proc/PID/stat (utime, stime), counted from 1 with pid and comm.
        seconds = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        by_group[group] = by_group.get(group, 0.0) + seconds
    return CpuSnapshot(by_group, machine_busy_s())


def machine_busy_s() -> float:
    try:
        first = (_PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    ticks = [int(value) for value in first[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _CLOCK_TICKS


def cpu_per_message(
    before: CpuSnapshot,
    after: CpuSnapshot,
    *,
    messages: int,
    elapsed_s: float,
    extra: dict[str, float] | None = None,
) -> dict[str, object]:
    """CPU milliseconds per message for each group, for all of them, and for the machine.

    ``extra`` adds CPU seconds measured otherwise (a process that exited during the run).
    """
    used = {
        group: after.by_group.get(group, 0.0) - before.by_group.get(group, 0.0)
        for group in set(before.by_group) | set(after.by_group)
    }
    used.update(extra or {})
    groups = {
        group: round(seconds * 1000 / messages, 3)
        for group, seconds in sorted(used.items(), key=lambda item: -item[1])
    }
    measured = sum(groups.values())
    machine = (after.machine_busy_s - before.machine_busy_s) * 1000 / messages
    cores = os.cpu_count() or 1
    return {
        "ms_per_message": groups,
        "measured_ms_per_message": round(measured, 3),
        "machine_ms_per_message": round(machine, 3),
        "other_processes_ms_per_message": round(machine - measured, 3),
        "machine_busy_percent": round(
            100 * (after.machine_busy_s - before.machine_busy_s) / (elapsed_s * cores), 1
        ),
    }
