"""Every signed-in route states the role it needs: walked over the app's routes, so a route added
without one fails here instead of being open to every account."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import Mount

from campaigns.core.storage import Database
from dashboard.app import create_app
from dashboard.auth import ROLE_REQUIREMENTS
from dashboard.roles import Role, role_allows
from tests.dashboard_helpers import dashboard_settings

SIGN_IN_ROUTES = {("dashboard.auth_pages", "login_form"), ("dashboard.auth_pages", "login")}
# Unsafe methods that change nothing: rendering a template and checking it against a list are
# what a viewer's template page does; signing out is for everyone.
READ_ONLY_UNSAFE_ROUTES = {"/api/templates/preview", "/api/templates/check", "/logout"}


def _app(tmp_path: Path) -> FastAPI:
    return create_app(dashboard_settings(tmp_path), database=Database("sqlite://"))


def _is_public(route: RouteContext) -> bool:
    assert route.endpoint is not None
    module = route.endpoint.__module__
    return module.startswith("public_endpoints.") or (module, route.name) in SIGN_IN_ROUTES


def _roles_required(dependant: Dependant) -> set[Role]:
    found = {ROLE_REQUIREMENTS[dependant.call]} if dependant.call in ROLE_REQUIREMENTS else set()
    for child in dependant.dependencies:
        found |= _roles_required(child)
    return found


def _signed_in_routes(app: FastAPI) -> list[tuple[RouteContext, Role | None]]:
    """Every route as it answers (with the dependencies of the routers that include it)."""
    routes = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            assert route.path == "/static", f"{route.path}: a mount no role can guard"
            continue
        assert isinstance(route.original_route, APIRoute), f"{route.path}: access unchecked"
        if _is_public(route):
            continue
        required = _roles_required(route.dependant)
        strongest = max(required, key=list(Role).index) if required else None
        routes.append((route, strongest))
    return routes


def test_every_signed_in_route_requires_a_role(tmp_path: Path) -> None:
    routes = _signed_in_routes(_app(tmp_path))
    without = [f"{route.methods} {route.path}" for route, role in routes if role is None]
    assert without == []
    # The walk saw the app: pages, API, metrics and the accounts API are all there.
    paths = {route.path for route, _role in routes}
    assert {"/campaigns", "/api/campaigns", "/metrics", "/api/users", "/api/me"} <= paths


def test_every_route_that_changes_something_needs_an_editor(tmp_path: Path) -> None:
    too_weak = [
        f"{route.methods} {route.path}: {role}"
        for route, role in _signed_in_routes(_app(tmp_path))
        if (route.methods or set()) - {"GET", "HEAD"}
        and route.path not in READ_ONLY_UNSAFE_ROUTES
        and not (role and role_allows(role, Role.EDITOR))
    ]
    assert too_weak == []


def test_accounts_are_for_admins_alone(tmp_path: Path) -> None:
    account_routes = [
        (route.path, role)
        for route, role in _signed_in_routes(_app(tmp_path))
        if route.path.startswith(("/api/users", "/api/tokens"))
    ]
    assert len(account_routes) == 6
    assert all(role == Role.ADMIN for _path, role in account_routes), account_routes
