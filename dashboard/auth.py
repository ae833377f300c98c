"""Who is asking: a session cookie from the sign-in page, or an API token sent as a bearer token.

A browser's cookie is sent with every request to the dashboard, including ones another site
makes it send, so every unsafe request signed in by cookie must also carry the session's CSRF
token (form field ``csrf_token`` or header ``X-CSRF-Token``). A bearer token is never sent by a
browser on its own and needs none.

Every signed-in route states the role it needs with ``RequireViewer``, ``RequireEditor`` or
``RequireAdmin`` (or the ``ViewerUser``/``EditorUser``/``AdminUser`` parameter types); a unit test
walks the routes and fails on one that states none.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from campaigns.core.storage import Database
from dashboard.accounts import SignedIn, session_user
from dashboard.bearer_tokens import token_user
from dashboard.roles import Role, role_allows

SESSION_COOKIE = "edm_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="an API token from `edm users token`")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="the sign-in page's session"
)


class SignInRequired(Exception):
    """No valid credentials: an API answers 401, a page sends the browser to sign in."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """An unsafe request signed in by cookie without the session's CSRF token."""


class RoleRefused(Exception):
    """Signed in, but the account's role does not allow this: 403."""

    def __init__(self, needed: Role, held: Role) -> None:
        super().__init__(f"this needs the {needed} role; your account is a {held}")
        self.needed = needed


def app_database(request: Request) -> Database:
    return request.app.state.database


async def signed_in(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> SignedIn:
    database = app_database(request)
    if request.headers.get("authorization"):
        if bearer is None:
            raise SignInRequired("Authorization: expected 'Bearer <token>'")
        found = await run_in_threadpool(token_user, database, bearer.credentials)
        if found is None:
            raise SignInRequired(
                "API token not recognised, revoked or expired (make one with `edm users token`)"
            )
        request.state.signed_in = found
        return found
    if not cookie:
        raise SignInRequired("sign in first, or send an API token as 'Authorization: Bearer'")
    found = await run_in_threadpool(session_user, database, cookie)
    if found is None:
        raise SignInRequired("your session has ended: sign in again")
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, found)
    request.state.signed_in = found
    return found


CurrentUser = Annotated[SignedIn, Depends(signed_in)]
"""Any signed-in account; routes use a role requirement below instead."""


def _requirement(needed: Role) -> Callable[[SignedIn], Awaitable[SignedIn]]:
    async def require_role(user: CurrentUser) -> SignedIn:
        if not role_allows(user.user.role, needed):
            raise RoleRefused(needed, user.user.role)
        return user

    require_role.__name__ = f"require_{needed}"
    return require_role


require_viewer = _requirement(Role.VIEWER)
require_editor = _requirement(Role.EDITOR)
require_admin = _requirement(Role.ADMIN)
ROLE_REQUIREMENTS: dict[Any, Role] = {
    require_viewer: Role.VIEWER,
    require_editor: Role.EDITOR,
    require_admin: Role.ADMIN,
}
"""Each requirement and the role it asks for (what the route-walking test looks for)."""

RequireViewer = Depends(require_viewer)
RequireEditor = Depends(require_editor)
RequireAdmin = Depends(require_admin)
ViewerUser = Annotated[SignedIn, RequireViewer]
EditorUser = Annotated[SignedIn, RequireEditor]
AdminUser = Annotated[SignedIn, RequireAdmin]


async def _check_csrf(request: Request, found: SignedIn) -> None:
    given = request.headers.get(CSRF_HEADER, "")
    if not given and _is_form(request):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    expected = found.csrf_token or ""
    if not (given and expected and secrets.compare_digest(given.encode(), expected.encode())):
        raise CsrfRefused()


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))
