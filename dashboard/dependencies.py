"""What the routes share: the app's database, settings and services, and checked input types."""

from __future__ import annotations

from typing import Annotated, Any

from argon2 import PasswordHasher
from fastapi import Depends, Path, Request
from pydantic import AfterValidator

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from dashboard.auth import app_database
from dashboard.background_imports import BackgroundImports
from dashboard.sign_in_limits import SignInLimiter
from dashboard.ttl_cache import TtlCache

MAX_ID = 2**63 - 1
"""The largest id a BIGINT holds: larger ones cannot name anything, and some drivers reject them."""


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def app_imports(request: Request) -> BackgroundImports:
    return request.app.state.imports


def app_monitor(request: Request) -> Any:
    return request.app.state.monitor


def app_chart_cache(request: Request) -> TtlCache:
    return request.app.state.chart_cache


def app_sign_in_limiter(request: Request) -> SignInLimiter:
    return request.app.state.sign_in_limiter


def app_password_hasher(request: Request) -> PasswordHasher:
    return request.app.state.password_hasher


def storable_text(value: str) -> str:
    """Text a database can store: no NUL character (PostgreSQL refuses it), valid Unicode."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


DatabaseDep = Annotated[Database, Depends(app_database)]
SettingsDep = Annotated[Settings, Depends(app_settings)]
ImportsDep = Annotated[BackgroundImports, Depends(app_imports)]
MonitorDep = Annotated[Any, Depends(app_monitor)]
ChartCacheDep = Annotated[TtlCache, Depends(app_chart_cache)]
SignInLimiterDep = Annotated[SignInLimiter, Depends(app_sign_in_limiter)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(app_password_hasher)]
Text = Annotated[str, AfterValidator(storable_text)]
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="campaign id")]
ListId = Annotated[int, Path(ge=1, le=MAX_ID, description="recipient list id")]
