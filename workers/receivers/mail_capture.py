"""A local SMTP server that writes every message it accepts to a folder, one .eml file each.

The demo delivers here so nothing leaves the machine; a person opens the files in a mail client.
"""

from __future__ import annotations

import itertools
import re
import socket
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from campaigns.core.private_files import make_private_directory


class _CaptureHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.count = 0

    async def handle_DATA(self, _server: Any, _session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        for recipient in envelope.rcpt_tos:
            with self._lock:
                number = next(self._numbers)
                self.count += 1
            safe_name = re.sub(r"[^A-Za-z0-9@._-]", "_", recipient)[:80]
            (self.folder / f"{number:06d}-{safe_name}.eml").write_bytes(content)
        return "250 2.0.0 Message captured"


class MailCapture:
    """Runs on 127.0.0.1 at a free port in a background thread while in a ``with`` block."""

    def __init__(self, folder: Path) -> None:
        make_private_directory(folder)
        self.folder = folder
        self._handler = _CaptureHandler(folder)
        self.port = _free_port()
        self._controller = Controller(
            self._handler, hostname="127.0.0.1", port=self.port, data_size_limit=50 * 2**20
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return self._handler.count

    def __enter__(self) -> MailCapture:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
