"""Access logs without capabilities: the tokens of tracking URLs and every query-string value
are replaced by ``…`` before uvicorn writes a request line.

A tracking token is a capability (it opens, clicks or unsubscribes for one recipient) and a
query string may carry a webhook secret (Postmark's ``?token=``) or an address someone searched
for; a log file is read by more people, and kept longer, than either deserves.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

REDACTED = "…"
ACCESS_LOGGER = "uvicorn.access"
# The tracking routes of public_endpoints/tracking.py: /o/{token}.gif, /c/{token}, /u/{token}.
_TRACKING_TOKEN = re.compile(r"^(/[ocu]/)[^/?#]+")
_REQUEST_LINE_PATH = 2
"""Position of the path and query in the arguments uvicorn logs a request with."""


def redacted_request_target(target: str) -> str:
    """``target`` (a path with an optional query) with tracking tokens and query values
    replaced: ``/c/abc?x=1&y`` -> ``/c/…?x=…&y``."""
    path, question_mark, query = target.partition("?")
    path = _TRACKING_TOKEN.sub(rf"\g<1>{REDACTED}", path)
    if not question_mark:
        return path
    names = (part.partition("=") for part in query.split("&"))
    return (
        path + "?" + "&".join(f"{name}={REDACTED}" if equals else name for name, equals, _ in names)
    )


class RedactedAccessLog(logging.Filter):
    """Rewrites the request target of uvicorn's access log records; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        arguments = record.args
        if isinstance(arguments, tuple) and len(arguments) > _REQUEST_LINE_PATH:
            target = arguments[_REQUEST_LINE_PATH]
            if isinstance(target, str):
                values = list(arguments)
                values[_REQUEST_LINE_PATH] = redacted_request_target(target)
                record.args = tuple(values)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up with the access log redacted: for every ``uvicorn.run``."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redacted_access_log"] = {"()": RedactedAccessLog}
    config["loggers"][ACCESS_LOGGER]["filters"] = ["redacted_access_log"]
    return config
