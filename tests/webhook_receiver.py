"""A webhook receiver on 127.0.0.1 in a thread: checks each request's signature as the README
tells receivers to, fails a share of requests on purpose, and keeps every event it accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 10_000_000
TOLERANCE_S = 300


def signature_is_valid(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """The README's verification, word for word."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("v1=" + expected.hexdigest(), signature)


@dataclass
class WebhookReceiver:
    """Fails ``failure_rate`` of requests with a seeded random: it keeps their events and then
    answers 500, as a receiver does that stored them and crashed before answering, so the
    sender's retry brings duplicates (which must carry the same ids)."""

    failure_rate: float = 0.0
    secret: str = ""
    seed: int = 12
    accepted: list[dict[str, Any]] = field(default_factory=list)
    """Every event of every well-signed request, in arrival order (repeats included)."""
    requests: int = 0
    failed: int = 0
    bad_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> WebhookReceiver:
        chooser = random.Random(self.seed)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_BODY_BYTES))
                valid = signature_is_valid(
                    receiver.secret,
                    self.headers.get("EDM-Webhook-Timestamp", ""),
                    body,
                    self.headers.get("EDM-Webhook-Signature", ""),
                )
                with receiver._lock:
                    receiver.requests += 1
                    fail = chooser.random() < receiver.failure_rate
                    if not valid:
                        receiver.bad_signatures += 1
                    else:
                        receiver.failed += fail
                        receiver.accepted.extend(json.loads(body)["events"])
                self.send_response(401 if not valid else 500 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.accepted)

    def first_arrivals(self) -> Iterator[dict[str, Any]]:
        """Each event once, in the order it first arrived."""
        seen: set[str] = set()
        for event in self.events():
            if event["id"] not in seen:
                seen.add(event["id"])
                yield event
