"""Bounds on request bodies, one per kind of route: a body that declares or grows past its
route's bound is answered 413 as soon as that is known, before the rest is read or anything is
stored. Both web apps (``edm serve`` and ``edm track``) install it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigns.core.settings import Settings
from campaigns.tracking.routes import TRACKING_PATHS, path_prefix
from public_endpoints.health import HEALTH_PATHS
from public_endpoints.webhooks import WEBHOOKS_PREFIX

PUBLIC_BODY_MAX_BYTES = 16 * 1024
"""The open pixel, click and health routes take no body, and an RFC 8058 one-click unsubscribe
is ``List-Unsubscribe=One-Click`` (26 bytes, a few hundred as multipart): anything bigger sent
to them is an attack, refused before the token is even checked."""
TRACKING_PREFIXES = tuple(path_prefix(path) for path in TRACKING_PATHS)


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    name: str
    """What sets the bound, for the 413 answer: a setting's name or the kind of route."""
    hint: str = ""

    @property
    def message(self) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"request body: larger than {self.name} ({self.max_bytes} bytes){hint}"


PUBLIC_ROUTE_LIMIT = BodyLimit(PUBLIC_BODY_MAX_BYTES, "the bound of the tracking routes")


def public_body_limit(path: str, settings: Settings) -> BodyLimit | None:
    """The bound of a public route's path; None for a path that is not one."""
    if path.startswith(WEBHOOKS_PREFIX + "/"):
        return BodyLimit(settings.webhook_max_bytes, "EDM_WEBHOOK_MAX_BYTES")
    if path.startswith(TRACKING_PREFIXES) or path in HEALTH_PATHS:
        return PUBLIC_ROUTE_LIMIT
    return None


class RequestBodyLimit:
    """ASGI middleware. A body without a Content-Length is counted as it arrives; the read that
    crosses the limit raises a 413 HTTPException inside the route, so a parser stops there and
    the route never goes on (a multipart upload's spooled temporary file is anonymous and goes
    with it). ``limit_for`` gives the bound of a request's path."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], BodyLimit]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit.max_bytes:
            await JSONResponse({"detail": limit.message}, status_code=413)(scope, receive, send)
            return
        received_bytes = 0

        async def limited_receive() -> Message:
            nonlocal received_bytes
            event = await receive()
            if event["type"] == "http.request":
                received_bytes += len(event.get("body", b""))
                if received_bytes > limit.max_bytes:
                    raise HTTPException(413, limit.message)
            return event

        await self.app(scope, limited_receive, send)
