"""The response headers every page of ``edm serve`` and ``edm track`` carries: no framing, no
content sniffing, no referrer leaving the site, no caching of anything but static files."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Email HTML in the preview carries its own <style> blocks and style attributes.
        "style-src 'self' 'unsafe-inline'",
        # A preview shows the images a template links to, wherever they are.
        "img-src 'self' data: https: http:",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""Set on every response that has not set its own (the tracking routes set a stricter
Referrer-Policy)."""
STATIC_PREFIX = "/static/"


def add_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(STATIC_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
