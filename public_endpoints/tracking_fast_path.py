"""The open pixel and a click on a known link, answered before the web framework is entered.

These two answers are the bulk of a tracking server's traffic and need nothing of the framework:
a signed token in the path, one header read, a fixed answer. Going through routing, dependency
solving and the other middleware costs several times the work of the answer itself, so this
ASGI middleware answers them first, with the same headers the routes give. Anything else (a
token that does not verify, a link not yet seen by this process, any other method or path) goes
on to the routes of ``public_endpoints.tracking``, which answer it as they always do.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from campaigns.tracking.routes import CLICK_PATH, OPEN_PIXEL_PATH, TokenPurpose, path_prefix
from campaigns.tracking.tokens import verify_job_token, verify_link_token
from public_endpoints.queued_answers import QueuedAnswers
from public_endpoints.security_headers import SECURITY_HEADERS
from public_endpoints.tracking import PRIVATE_HEADERS, TRANSPARENT_GIF

_PIXEL_PREFIX = path_prefix(OPEN_PIXEL_PATH)
_PIXEL_SUFFIX = OPEN_PIXEL_PATH.partition("{token}")[2]
_CLICK_PREFIX = path_prefix(CLICK_PATH)
_HEADERS = [
    (name.lower().encode(), value.encode())
    for name, value in (SECURITY_HEADERS | PRIVATE_HEADERS).items()
]
_PIXEL_HEADERS = [
    *_HEADERS,
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(TRANSPARENT_GIF)).encode()),
]


class TrackingFastPath:
    def __init__(self, app: ASGIApp, *, secret: bytes, answers: QueuedAnswers) -> None:
        self.app = app
        self.secret = secret
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(_PIXEL_PREFIX) and path.endswith(_PIXEL_SUFFIX):
                token = path[len(_PIXEL_PREFIX) : -len(_PIXEL_SUFFIX)]
                job_id = verify_job_token(self.secret, TokenPurpose.OPEN, token)
                if job_id is not None:
                    await self.answers.record_open(job_id, _user_agent(scope))
                    await _answer(send, 200, _PIXEL_HEADERS, TRANSPARENT_GIF)
                    return
            elif path.startswith(_CLICK_PREFIX):
                names = verify_link_token(self.secret, path[len(_CLICK_PREFIX) :])
                url = None if names is None else self.answers.cached_link_url(names[1])
                if names is not None and url is not None:
                    job_id, link_id = names
                    await self.answers.record_click(job_id, link_id, _user_agent(scope))
                    location = (b"location", url.encode("utf-8", "surrogateescape"))
                    headers = [*_HEADERS, location, (b"content-length", b"0")]
                    await _answer(send, 302, headers, b"")
                    return
        await self.app(scope, receive, send)


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return str(value.decode("latin-1"))
    return None


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
