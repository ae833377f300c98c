"""What the fault tests share: what an SMTP server received, a worker's environment, the
processes of a process group, and the report line each test prints."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.smtp_server import RecordingSmtpServer


def received_by(server: RecordingSmtpServer) -> Counter[str]:
    """How many times each recipient arrived (lower-cased)."""
    return Counter(rcpt.lower() for message in list(server.messages) for rcpt in message.rcpt_tos)


def fault_report(text: str) -> None:
    print(f"\nfault report: {text}")


def worker_env(server: RecordingSmtpServer, **settings: object) -> dict[str, str]:
    return {"EDM_SMTP_URL": server.url, **{f"EDM_{k.upper()}": str(v) for k, v in settings.items()}}


def process_group(pgid: int) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            members.add(int(entry.name))
    return members
