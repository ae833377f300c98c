"""The machine's ceiling: Postfix's ``smtp-source`` pushing pre-made messages into the same sink
over persistent connections (``-d``), timed until the sink has them all."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import asdict, dataclass

from bench.sinks import SmtpSink

SESSIONS = 4


@dataclass
class CeilingResult:
    name: str
    messages: int
    payload_bytes: int
    elapsed_s: float
    messages_per_s: float
    command: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_ceiling(
    sink: SmtpSink, *, messages: int, payload_bytes: int, timeout_s: float
) -> CeilingResult | None:
    """None when smtp-source is not installed."""
    binary = shutil.which("smtp-source")
    if binary is None:
        return None
    command = [binary, "-d", "-s", str(SESSIONS), "-m", str(messages), "-l", str(payload_bytes)]
    command += ["-f", "bench@bench.example", "-t", "sink@bench.example", sink.address]
    base = sink.count
    started = time.monotonic()
    subprocess.run(command, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
    finished_at = sink.wait_for(base + messages, timeout_s=30)
    if finished_at is None:
        raise RuntimeError(f"smtp-source: the sink had {sink.count - base} of {messages}")
    elapsed_s = finished_at - started
    return CeilingResult(
        name=f"ceiling: smtp-source -d -s {SESSIONS} (C, pre-made messages)",
        messages=messages,
        payload_bytes=payload_bytes,
        elapsed_s=elapsed_s,
        messages_per_s=messages / elapsed_s,
        command=" ".join(command),
    )
