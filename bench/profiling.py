"""Where the time goes: py-spy attached to running processes, summarised as text.

py-spy samples every thread of the given processes and their children 100 times a second
(``--idle`` keeps waiting threads, ``--threads`` tells them apart). A sample whose innermost
frame is a known wait (epoll, a queue or condition wait, billiard's pipe read) counts as idle;
every other sample is "busy": running Python, or in a C call (a socket write, an SQLite step,
CSS inlining) that py-spy cannot tell from waiting. Busy samples are put into one bucket each,
by the most specific project function on their stack, and reported as milliseconds per
message sent, per kind of process and thread.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.processes import end_process

SAMPLE_RATE_HZ = 100
TOP_FUNCTIONS = 20
_PROCESS_FRAME = re.compile(r'^process (\d+):"?(.*?)"?$')
IDLE_LEAVES = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "PollSelector.select (selectors.py)",
        "_epoll.poll (kombu/utils/eventio.py)",
        "_poll.poll (kombu/utils/eventio.py)",
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "Thread._wait_for_tstate_lock (threading.py)",
        "Queue.get (queue.py)",
        "_worker (concurrent/futures/thread.py)",
        "Connection._recv (billiard/connection.py)",
    }
)
"""Innermost frames of a thread that waits (py-spy shows the Python caller of the C wait)."""
# The first bucket with a frame anywhere on the stack wins: specific project work first.
PROJECT_BUCKETS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("db: claim batch", r"^claim_jobs \(campaigns/jobs/job_store\.py\)"),
        ("db: marks and outcomes", r"^write_jobs \(campaigns/jobs/job_store\.py\)"),
        ("db: leases, campaign state", r"^(renew_leases|release_jobs|campaign_states) "),
        ("dispatcher pass", r"^Dispatcher\.run_once "),
        ("render: tracking links", r"\(campaigns/tracking/links\.py\)"),
        ("render: template + CSS inline", r"^CompiledTemplate\.render "),
        ("message bytes (skeleton)", r"^MessageSkeleton\.build "),
        ("DKIM signing", r"\(campaigns/content/dkim\.py\)"),
        ("tokens (HMAC)", r"\(campaigns/tracking/tokens\.py\)"),
        ("rate limiter (Redis)", r"\(workers/rate_limits/"),
        ("SMTP (pool, aiosmtplib, socket)", r"\((workers/smtp/|aiosmtplib/)"),
        ("delivery loop (other)", r"\(workers/(delivery|relays)/"),
    )
)
# Otherwise the innermost frame of a library layer decides: every stack runs on all of them.
LAYER_BUCKETS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("sqlalchemy (other)", r"\(sqlalchemy/"),
        ("celery/kombu/billiard", r"\((celery|kombu|billiard)/"),
        ("asyncio event loop", r"\(asyncio/"),
    )
)


def py_spy_binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpyRecorder:
    """``py-spy record --subprocesses`` on some processes until ``stop()``; one raw file each."""

    def __init__(self, summary_path: Path) -> None:
        self.summary_path = summary_path
        self._recordings: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, pids: list[int]) -> None:
        binary = py_spy_binary()
        if binary is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.summary_path.parent.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            raw_path = self.summary_path.with_suffix(f".{pid}.raw")
            command = [binary, "record", "--pid", str(pid), "--subprocesses", "--nolineno"]
            command += ["--idle", "--threads", "--format", "raw", "--output", str(raw_path)]
            command += ["--rate", str(SAMPLE_RATE_HZ)]
            process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._recordings.append((process, raw_path))

    def stop(self, *, messages: int, elapsed_s: float) -> dict[str, Any]:
        """Stop sampling (py-spy writes its file on SIGINT) and write the text summary."""
        for process, _ in self._recordings:
            end_process(process, signal.SIGINT, timeout_s=30)
        stacks: Counter[str] = Counter()
        for _, raw_path in self._recordings:
            if raw_path.exists():
                stacks.update(read_collapsed(raw_path))
        summary = summarise(stacks, messages=messages)
        header = (
            f"py-spy, {SAMPLE_RATE_HZ} samples/s per thread, {messages:,} messages in "
            f"{elapsed_s:.1f} s (sampling slows the workers down)\n"
        )
        self.summary_path.write_text(header + format_summary(summary))
        return {"summary_file": str(self.summary_path), "processes": summary}


def read_collapsed(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def summarise(stacks: Counter[str], *, messages: int) -> dict[str, dict[str, Any]]:
    """Per process kind and thread role: wall and busy samples, busy ms per message by bucket,
    and the functions busy samples were in."""
    root_pids = {_PROCESS_FRAME.match(stack.split(";", 1)[0]) for stack in stacks}
    roots = {match.group(1) for match in root_pids if match}
    wall: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    buckets: dict[str, Counter[str]] = defaultdict(Counter)
    own: dict[str, Counter[str]] = defaultdict(Counter)
    for stack, count in stacks.items():
        frames = stack.split(";")
        processes = [
            _PROCESS_FRAME.match(frame) for frame in frames if frame.startswith("process ")
        ]
        frames = [frame for frame in frames if not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        process = processes[-1] if processes else None
        kind = _kind(process, roots)
        role = "helper threads" if frames[0].startswith("Thread._bootstrap") else "main thread"
        key = f"{kind}, {role}"
        wall[key] += count
        if frames[-1] in IDLE_LEAVES:
            continue
        busy[key] += count
        buckets[key][_bucket(frames)] += count
        own[key][frames[-1]] += count
    per_message_ms = 1000 / SAMPLE_RATE_HZ / max(messages, 1)
    summary: dict[str, dict[str, Any]] = {}
    for key, busy_samples in busy.most_common():
        summary[key] = {
            "wall_samples": wall[key],
            "busy_samples": busy_samples,
            "busy_ms_per_message": round(busy_samples * per_message_ms, 3),
            "buckets_ms_per_message": {
                name: round(count * per_message_ms, 3) for name, count in buckets[key].most_common()
            },
            "top_innermost": [
                {"function": frame, "ms_per_message": round(count * per_message_ms, 3)}
                for frame, count in own[key].most_common(TOP_FUNCTIONS)
            ],
        }
    return summary


def _kind(process: re.Match[str] | None, roots: set[str]) -> str:
    if process is None:
        return "unknown process"
    command = process.group(2)
    if "dispatcher_loop" in command:
        return "dispatcher"
    if "celery" in command or "campaigns" in command:
        if process.group(1) in roots:
            return "celery main process"
        return "pool processes"
    return command[:60]


def _bucket(frames: list[str]) -> str:
    for name, pattern in PROJECT_BUCKETS:
        if any(pattern.search(frame) for frame in frames):
            return name
    for frame in reversed(frames):
        for name, pattern in LAYER_BUCKETS:
            if pattern.search(frame):
                return name
    return "other"


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    lines = []
    for key, details in summary.items():
        lines.append(
            f"== {key}: busy {details['busy_ms_per_message']:.3f} ms per message "
            f"({details['busy_samples']} busy of {details['wall_samples']} samples)"
        )
        for name, ms in details["buckets_ms_per_message"].items():
            lines.append(f"   {ms:7.3f} ms  {name}")
        lines.append("   -- innermost functions")
        for row in details["top_innermost"]:
            lines.append(f"   {row['ms_per_message']:7.3f} ms  {row['function']}")
        lines.append("")
    return "\n".join(lines)
