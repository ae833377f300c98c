"""Overload: past a bound of requests in hand, open pixels are answered 503 at once.

A pixel refused costs the mail client nothing (it fetches the image again when the message is
next shown) and costs the server almost nothing, so under a burst the requests that matter keep
their latency: a click must still redirect and an unsubscribe must be recorded, so those are
never refused. Each connection carries one request at a time, so what they hold is bounded by
the connections the server accepts.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from campaigns.tracking.routes import OPEN_PIXEL_PATH, path_prefix

_PIXEL_PREFIX = path_prefix(OPEN_PIXEL_PATH)
_BUSY_HEADERS = {"Retry-After": "1", "Cache-Control": "no-store, private"}


class InFlightLimit:
    """ASGI middleware: at most ``max_in_flight`` requests at once before pixels are refused."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight and scope["path"].startswith(_PIXEL_PREFIX):
            busy = PlainTextResponse("Busy\n", status_code=503, headers=_BUSY_HEADERS)
            await busy(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
