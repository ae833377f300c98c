"""Signing in and out.

The sign-in form has no session yet to hold a CSRF token, so it uses a double-submit token: a
random value in a cookie and in the form, which another site can neither read nor set. Failed
sign-ins are limited per account and per client address (``dashboard.sign_in_limits``); API
tokens are random secrets, not passwords, and need no such limit.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dashboard.accounts import authenticate, end_session, start_session
from dashboard.auth import SESSION_COOKIE, ViewerUser
from dashboard.dependencies import DatabaseDep, PasswordHasherDep, SignInLimiterDep
from dashboard.page_rendering import render

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "edm_login_csrf"
SESSION_MAX_AGE_S = 7 * 24 * 3600


def safe_next(path: str) -> str:
    """Only a path on this site: never another host (an open redirect helps phishing)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    if "\\" in path or path.startswith("/login"):
        return "/"
    return path


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(
    request: Request, *, next_path: str, email: str = "", error: str = "", status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next_path": next_path, "email": email, "login_error": error},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next_path=safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    database: DatabaseDep,
    limiter: SignInLimiterDep,
    hasher: PasswordHasherDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    next_path = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (expected and csrf_token and secrets.compare_digest(expected, csrf_token)):
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error="The sign-in form had expired. Please try again.",
            status=400,
        )
    address = request.client.host if request.client else ""
    refused = await run_in_threadpool(limiter.attempt, email, address)
    if refused is not None:
        response = _login_page(
            request, next_path=next_path, email=email, error=refused.message, status=429
        )
        response.headers["Retry-After"] = str(refused.retry_after_s)
        return response
    user = await run_in_threadpool(authenticate, database, email, password, hasher=hasher)
    if user is None:
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error="That email and password do not match an account.",
            status=401,
        )
    await run_in_threadpool(limiter.succeeded, email, address)
    token, _csrf = await run_in_threadpool(start_session, database, user)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(user: ViewerUser, database: DatabaseDep) -> Response:
    if user.session_hash is not None:
        await run_in_threadpool(end_session, database, user.session_hash)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
