"""Errors as answers: one line saying what is wrong, as JSON for the API and as a page for people.

The project's errors map to statuses (a missing campaign is 404, pausing a finished one 409, bad
input 400, an unreachable service 503); malformed requests are 422 naming the field. Anything
else is a bug: it is logged with its traceback and answered 500 without one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from campaigns.core.errors import (
    ConflictingRequest,
    EdmError,
    InputError,
    NotFound,
    ServiceUnavailable,
    StateError,
)
from dashboard.auth import CsrfRefused, RoleRefused, SignInRequired
from public_endpoints.access_log import redacted_request_target

log = logging.getLogger("edm.dashboard")

CSRF_MESSAGE = "the form's security token is missing or out of date: reload the page and try again"


def status_of(error: EdmError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, StateError):
        return 409
    if isinstance(error, ServiceUnavailable):
        return 503
    if isinstance(error, ConflictingRequest):
        return 422
    if isinstance(error, InputError):
        return 400
    return 400


def wants_json(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
        or path == "/metrics"
        or request.headers.get("hx-request") == "true"
    )


def install_error_handlers(app: FastAPI, render_error_page: Any) -> None:
    """``render_error_page(request, status, title, message)`` draws the page for browsers."""

    def answer(request: Request, status: int, title: str, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        return render_error_page(request, status, title, message)

    @app.exception_handler(EdmError)
    async def edm_error(request: Request, error: EdmError) -> Response:
        status = status_of(error)
        return answer(request, status, _title(status), str(error))

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, error: SignInRequired) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"detail": error.reason},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _error: CsrfRefused) -> Response:
        return answer(request, 403, "Forbidden", CSRF_MESSAGE)

    @app.exception_handler(RoleRefused)
    async def role_refused(request: Request, error: RoleRefused) -> Response:
        return answer(request, 403, "Forbidden", str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        return answer(request, 422, "Invalid request", describe_validation(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        message = error.detail if isinstance(error.detail, str) else _title(error.status_code)
        if wants_json(request):
            return JSONResponse(
                {"detail": message}, status_code=error.status_code, headers=error.headers
            )
        return render_error_page(request, error.status_code, _title(error.status_code), message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("%s %s failed", request.method, redacted_request_target(request.url.path))
        return answer(
            request, 500, "Something went wrong", "internal error: the server log has the details"
        )


def describe_validation(errors: Any) -> str:
    """The first problem of a malformed request, as ``where: what``."""
    parts = []
    for error in list(errors)[:3]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _title(status: int) -> str:
    return {
        400: "Cannot do that",
        401: "Sign in required",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        409: "Not now",
        413: "Too large",
        422: "Invalid request",
        503: "Service unavailable",
    }.get(status, "Error")
