"""The tracking endpoints: open pixel, click redirect and one-click unsubscribe.

Every URL carries an opaque signed token and nothing else (never an address). A token that is
forged, altered or malformed gets a plain 404 and a log line, and nothing is recorded. The
unsubscribe POST needs no cookie, login or CSRF token: RFC 8058 has the mailbox provider post
``List-Unsubscribe=One-Click`` to the URL on the reader's behalf, and the token is the proof.
GET only shows a confirmation, because mail scanners follow links.
"""

from __future__ import annotations

import base64
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from campaigns.core.storage import Database
from campaigns.tracking.recording import record_click, record_open, unsubscribe, unsubscriber
from campaigns.tracking.routes import CLICK_PATH, OPEN_PIXEL_PATH, UNSUBSCRIBE_PATH, TokenPurpose
from campaigns.tracking.tokens import verify_job_token, verify_link_token
from public_endpoints.queued_answers import QueuedAnswers
from public_endpoints.unsubscribe_pages import (
    already_unsubscribed_page,
    confirm_page,
    unsubscribed_page,
)

log = logging.getLogger(__name__)

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A 1x1 transparent GIF (43 bytes)."""
ONE_CLICK_MARK = b"One-Click"
"""In an RFC 8058 POST body, url-encoded or multipart alike."""
_BODY_BYTES_READ = 4096
PRIVATE_HEADERS = {
    # Each pixel load must reach the server; nothing here is for a search engine, and the
    # target of a redirect need not learn the token it came through.
    "Cache-Control": "no-store, private",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def tracking_router(
    database: Database, secret: bytes, answers: QueuedAnswers | None = None
) -> APIRouter:
    """The routes of ``campaigns.tracking.routes`` (open pixel, click, unsubscribe), on
    ``database``; ``secret`` is the key that signed the tokens (``Settings.secret``).

    With ``answers``, opens and clicks are answered from the token and their events queued
    (see ``public_endpoints.tracking_events``); without, each is written before its answer.
    """
    router = APIRouter()
    if answers is None:
        _add_pixel_and_click_routes(router, database, secret)
    else:
        _add_queued_pixel_and_click_routes(router, secret, answers)
    _add_unsubscribe_routes(router, database, secret)
    return router


def _add_pixel_and_click_routes(router: APIRouter, database: Database, secret: bytes) -> None:
    @router.get(OPEN_PIXEL_PATH, include_in_schema=False)
    def open_pixel(token: str, request: Request) -> Response:
        job_id = verify_job_token(secret, TokenPurpose.OPEN, token)
        if job_id is None:
            return _refused("open", token)
        user_agent = request.headers.get("user-agent")
        if record_open(database, job_id, user_agent=user_agent) is None:
            return _no_job("open", job_id)
        return Response(TRANSPARENT_GIF, media_type="image/gif", headers=PRIVATE_HEADERS)

    @router.get(CLICK_PATH, include_in_schema=False)
    def click(token: str, request: Request) -> Response:
        names = verify_link_token(secret, token)
        if names is None:
            return _refused("click", token)
        job_id, link_id = names
        url = record_click(database, job_id, link_id, user_agent=request.headers.get("user-agent"))
        if url is None:
            # Signed, yet no such link in the job's campaign: never redirect anywhere else.
            return _no_job("click", job_id)
        return RedirectResponse(url, status_code=302, headers=PRIVATE_HEADERS)


def _add_queued_pixel_and_click_routes(
    router: APIRouter, secret: bytes, answers: QueuedAnswers
) -> None:
    @router.get(OPEN_PIXEL_PATH, include_in_schema=False)
    async def open_pixel(token: str, request: Request) -> Response:
        job_id = verify_job_token(secret, TokenPurpose.OPEN, token)
        if job_id is None:
            return _refused("open", token)
        await answers.record_open(job_id, request.headers.get("user-agent"))
        return Response(TRANSPARENT_GIF, media_type="image/gif", headers=PRIVATE_HEADERS)

    @router.get(CLICK_PATH, include_in_schema=False)
    async def click(token: str, request: Request) -> Response:
        names = verify_link_token(secret, token)
        if names is None:
            return _refused("click", token)
        job_id, link_id = names
        url = await answers.link_url(job_id, link_id)
        if url is None:
            return _no_job("click", job_id)
        await answers.record_click(job_id, link_id, request.headers.get("user-agent"))
        return RedirectResponse(url, status_code=302, headers=PRIVATE_HEADERS)


def _add_unsubscribe_routes(router: APIRouter, database: Database, secret: bytes) -> None:
    @router.get(UNSUBSCRIBE_PATH, include_in_schema=False)
    def unsubscribe_confirmation(token: str) -> Response:
        job_id = verify_job_token(secret, TokenPurpose.UNSUBSCRIBE, token)
        if job_id is None:
            return _refused("unsubscribe", token)
        found = unsubscriber(database, job_id)
        if found is None:
            return _no_job("unsubscribe", job_id)
        sender, already = found
        page = already_unsubscribed_page(sender) if already else confirm_page(sender)
        return HTMLResponse(page, headers=PRIVATE_HEADERS)

    @router.post(UNSUBSCRIBE_PATH, include_in_schema=False)
    async def unsubscribe_now(token: str, request: Request) -> Response:
        job_id = verify_job_token(secret, TokenPurpose.UNSUBSCRIBE, token)
        if job_id is None:
            return _refused("unsubscribe", token)
        body = await _body_start(request)
        how = "one-click" if ONE_CLICK_MARK in body else "form"
        done = await run_in_threadpool(unsubscribe, database, job_id, how=how)
        if done is None:
            return _no_job("unsubscribe", job_id)
        if done.first:
            log.info("job %d unsubscribed (%s)", job_id, how)
        # 200 with a page, never a redirect: a one-click POST is not followed by a browser.
        return HTMLResponse(unsubscribed_page(), headers=PRIVATE_HEADERS)


async def _body_start(request: Request) -> bytes:
    """The first few KB of the body: enough for any unsubscribe form, and no more is kept.

    The rest is read and dropped, not left unread: the apps' body bound (``body_limit``) counts
    what is read, and so refuses an oversized body even when it comes in small chunks.
    """
    body = b""
    async for chunk in request.stream():
        if len(body) < _BODY_BYTES_READ:
            body += chunk[: _BODY_BYTES_READ - len(body)]
    return body


def _refused(purpose: str, token: str) -> Response:
    log.warning("refused a forged or malformed %s token (%d characters)", purpose, len(token))
    return _not_found()


def _no_job(purpose: str, job_id: int) -> Response:
    # A valid token whose job is gone (its campaign deleted) or whose link was never sent.
    log.info("%s token for job %d names nothing that exists", purpose, job_id)
    return _not_found()


def _not_found() -> Response:
    return PlainTextResponse("Not found\n", status_code=404, headers=PRIVATE_HEADERS)
