"""The public tracking routes and the purposes their tokens are signed for, in one place.

The message builder writes these URLs and ``public_endpoints.tracking`` routes them: both read
the paths here, so a path changed on one side cannot leave the other behind. Each path is a
FastAPI template with a single ``{token}`` and nothing after the token but a fixed suffix.
"""

from __future__ import annotations

from enum import StrEnum

from campaigns.tracking.tokens import sign_job_token, sign_link_token


class TokenPurpose(StrEnum):
    """What a job token was signed for; one signed for one purpose is worthless for another."""

    BOUNCE = "bounce"
    """The VERP return path (an address, not a route)."""
    UNSUBSCRIBE = "unsubscribe"
    OPEN = "open"
    MESSAGE_ID = "message-id"
    """The tag in a Message-ID that lets a report naming it count (not a route either)."""


OPEN_PIXEL_PATH = "/o/{token}.gif"
CLICK_PATH = "/c/{token}"
UNSUBSCRIBE_PATH = "/u/{token}"
TRACKING_PATHS = (OPEN_PIXEL_PATH, CLICK_PATH, UNSUBSCRIBE_PATH)


def path_prefix(path: str) -> str:
    """The part of a route's path before its token (``"/c/"`` for ``"/c/{token}"``)."""
    return path.partition("{token}")[0]


def route_url(base_url: str, path: str, token: str) -> str:
    return base_url.rstrip("/") + path.format(token=token)


def open_pixel_url(base_url: str, secret: bytes, job_id: int) -> str:
    return route_url(base_url, OPEN_PIXEL_PATH, sign_job_token(secret, TokenPurpose.OPEN, job_id))


def click_url(base_url: str, secret: bytes, job_id: int, link_id: int) -> str:
    return route_url(base_url, CLICK_PATH, sign_link_token(secret, job_id, link_id))


def unsubscribe_url(base_url: str, secret: bytes, job_id: int) -> str:
    token = sign_job_token(secret, TokenPurpose.UNSUBSCRIBE, job_id)
    return route_url(base_url, UNSUBSCRIBE_PATH, token)
