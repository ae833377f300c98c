"""Telling an open a person made from one a machine made.

A pixel load proves only that something fetched the image. Apple Mail Privacy Protection
fetches every image of every message soon after delivery, whether anyone reads it or not, from a
proxy whose user agent is exactly ``Mozilla/5.0``; security gateways and link scanners fetch
within seconds of delivery. Those opens are machine-made.

The Gmail and Yahoo image proxies are not: they fetch when the reader opens the message (the
proxy only hides the reader's address and caches the image), so counting them as machine-made
would erase the opens of most readers. Their opens count as a person's unless they too arrive
within seconds of delivery; the event names the proxy.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

MACHINE_OPEN_WINDOW = timedelta(seconds=10)
"""An open this soon after the relay accepted the message was not made by a reader."""

APPLE_PRIVACY_PROXY_USER_AGENT = "Mozilla/5.0"

# Lower-case pieces of user agents that belong to programs, never to a mail client.
_PROGRAM_USER_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "headlesschrome",
    "python-",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
)
_IMAGE_PROXIES = {"googleimageproxy": "google", "yahoomailproxy": "yahoo"}


class MachineOpen(enum.StrEnum):
    """Why an open is taken as machine-made."""

    APPLE_PRIVACY_PROXY = "apple_privacy_proxy"
    NO_USER_AGENT = "no_user_agent"
    PROGRAM = "program"
    SECONDS_AFTER_DELIVERY = "seconds_after_delivery"


def machine_open_reason(
    user_agent: str | None, *, opened_at: datetime, sent_at: datetime | None
) -> MachineOpen | None:
    """Why this open looks machine-made, or None when it looks like a person's."""
    agent = (user_agent or "").strip()
    if not agent:
        return MachineOpen.NO_USER_AGENT
    if agent == APPLE_PRIVACY_PROXY_USER_AGENT:
        return MachineOpen.APPLE_PRIVACY_PROXY
    lowered = agent.lower()
    if any(piece in lowered for piece in _PROGRAM_USER_AGENTS):
        return MachineOpen.PROGRAM
    if sent_at is not None and opened_at - sent_at < MACHINE_OPEN_WINDOW:
        return MachineOpen.SECONDS_AFTER_DELIVERY
    return None


def image_proxy(user_agent: str | None) -> str | None:
    """``google`` or ``yahoo`` when the open came through that provider's image proxy."""
    lowered = (user_agent or "").lower()
    return next((name for piece, name in _IMAGE_PROXIES.items() if piece in lowered), None)
