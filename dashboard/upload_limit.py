"""A bound on request bodies (``EDM_MAX_UPLOAD_BYTES``): a body that declares or grows past it
is answered 413 as soon as that is known, before the rest is read or anything is stored."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(max_body_bytes: int) -> str:
    return (
        f"request body: larger than EDM_MAX_UPLOAD_BYTES ({max_body_bytes} bytes); "
        "import bigger files with `edm lists import`"
    )


class RequestBodyLimit:
    """ASGI middleware. A body without a Content-Length is counted as it arrives; the read that
    crosses the limit raises a 413 HTTPException inside the route, so the multipart parser stops
    there and the route never runs (its spooled temporary file is anonymous and goes with it)."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        """``path_limits`` are tighter limits for the paths they name."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_body_bytes = self.path_limits.get(scope["path"], self.max_body_bytes)
        message = (
            f"request body: larger than {max_body_bytes} bytes"
            if scope["path"] in self.path_limits
            else too_large_message(max_body_bytes)
        )
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)
            return
        received_bytes = 0

        async def limited_receive() -> Message:
            nonlocal received_bytes
            event = await receive()
            if event["type"] == "http.request":
                received_bytes += len(event.get("body", b""))
                if received_bytes > max_body_bytes:
                    raise HTTPException(413, message)
            return event

        await self.app(scope, limited_receive, send)
