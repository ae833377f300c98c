"""The SMTP sink every measurement sends to: Postfix's ``smtp-sink`` when installed, else
``bench.counting_sink``. Both run as their own process and report a running ``mesg=`` count;
the counting sink can also report when each message for one domain arrived (``mark_domain``)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from bench.processes import end_process

_COUNT = re.compile(rb"mesg=(\d+)")
_ARRIVED = re.compile(rb"^arrived (\S+) ([\d.]+)$", re.MULTILINE)
_START_TIMEOUT_S = 10.0
SMTP_SINK_BACKLOG = 1024


class SinkError(RuntimeError):
    pass


class SmtpSink:
    """A running sink on 127.0.0.1; ``count`` is the number of messages it has received."""

    def __init__(self, kind: str, *, mark_domain: str = "") -> None:
        if kind not in ("postfix", "counting"):
            raise ValueError(f"unknown sink kind {kind!r}")
        if mark_domain and kind != "counting":
            raise ValueError("only the counting sink reports arrivals (mark_domain)")
        self.kind = kind
        self.mark_domain = mark_domain
        self._arrivals: dict[str, float] = {}
        """Recipient at ``mark_domain`` -> monotonic time its message was answered 250."""
        self._duplicate_arrivals = 0
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._count = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def description(self) -> str:
        if self.kind == "postfix":
            return f"Postfix smtp-sink ({shutil.which('smtp-sink')}) on {self.address}"
        return f"bench.counting_sink (asyncio, Python) on {self.address}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    @property
    def arrivals(self) -> dict[str, float]:
        """A copy of the arrival times so far (recipients at ``mark_domain``)."""
        with self._lock:
            return dict(self._arrivals)

    @property
    def arrived(self) -> int:
        with self._lock:
            return len(self._arrivals)

    @property
    def unmarked_count(self) -> int:
        """Messages to anyone but a marked recipient (a campaign's, beside transactional mail)."""
        with self._lock:
            return self._count - len(self._arrivals) - self._duplicate_arrivals

    @property
    def duplicate_arrivals(self) -> int:
        """Messages to a marked recipient that had arrived already."""
        with self._lock:
            return self._duplicate_arrivals

    def start(self) -> SmtpSink:
        if self.kind == "postfix":
            binary = shutil.which("smtp-sink")
            if binary is None:
                raise SinkError("smtp-sink is not installed (Debian package postfix)")
            # -c prints the counters; -u is required when started as root, ignored otherwise.
            command = [binary, "-c", "-4", "-m", "1024"]
            if os.geteuid() == 0:
                command += ["-u", "nobody"]
            command += [self.address, str(SMTP_SINK_BACKLOG)]
        else:
            command = [sys.executable, "-m", "bench.counting_sink", "--port", str(self.port)]
            if self.mark_domain:
                command += ["--mark-domain", self.mark_domain]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_counts, daemon=True)
        self._reader.start()
        self._wait_until_listening()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            end_process(process, signal.SIGTERM, timeout_s=5)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def wait_for(
        self, target: int, *, timeout_s: float, alive: Callable[[], None] | None = None
    ) -> float | None:
        """Block until ``count >= target``; the monotonic time it was seen, or None on timeout.

        ``alive``, when given, is called between polls and may raise to abandon the wait.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count >= target:
                return time.monotonic()
            if alive is not None:
                alive()
            time.sleep(0.005)
        return time.monotonic() if self.count >= target else None

    def settle(self, *, quiet_s: float = 1.0, timeout_s: float = 30.0) -> int:
        """The count once it has not changed for ``quiet_s`` (late or duplicate messages)."""
        deadline = time.monotonic() + timeout_s
        last = self.count
        changed_at = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now_count = self.count
            if now_count != last:
                last, changed_at = now_count, time.monotonic()
            elif time.monotonic() - changed_at >= quiet_s:
                break
        return last

    def _read_counts(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        tail = b""
        partial_line = b""
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                return
            arrivals: list[tuple[bytes, bytes]] = []
            if self.mark_domain:
                # Whole lines only, so that a count never runs ahead of the arrivals it
                # includes: the last, cut line waits for the next chunk.
                lines, _, partial_line = (partial_line + chunk).rpartition(b"\n")
                matches = _COUNT.findall(lines)
                arrivals = _ARRIVED.findall(lines)
            else:
                text = tail + chunk
                matches = _COUNT.findall(text)
                # A count cut at the chunk's end is read again, whole, with the next chunk.
                tail = text[-32:]
            with self._lock:
                if matches:
                    self._count = max(self._count, int(matches[-1]))
                for address, seconds in arrivals:
                    if address.decode() in self._arrivals:
                        self._duplicate_arrivals += 1
                    else:
                        self._arrivals[address.decode()] = float(seconds)

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise SinkError(f"{self.kind} sink exited with code {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    banner = probe.recv(512)
                    probe.sendall(b"QUIT\r\n")
                if banner.startswith(b"220"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SinkError(f"{self.kind} sink did not answer on {self.address}")

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def choose_sink_kind(requested: str) -> str:
    """``auto`` means Postfix's smtp-sink when it is installed, else the counting sink."""
    if requested == "auto":
        return "postfix" if shutil.which("smtp-sink") else "counting"
    if requested == "postfix" and shutil.which("smtp-sink") is None:
        raise SinkError("--sink postfix: smtp-sink is not installed (apt-get install postfix)")
    return requested


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
