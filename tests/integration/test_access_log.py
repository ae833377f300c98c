"""Access logs of ``edm serve`` and ``edm track`` keep no capability: tracking tokens and query
values are written as ``…``. The servers run for real, with the log set-up they ship with."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from campaigns.tracking.tokens import sign_job_token, sign_link_token
from public_endpoints.access_log import RedactedAccessLog, redacted_request_target
from tests.tracking_helpers import edm_web_server, fetch

SECRET_KEY = "test-secret"
WEBHOOK_TOKEN = "postmark-webhook-secret-1234"


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/o/AbC-123_x.gif", "/o/…"),
        ("/c/AbC-123_x", "/c/…"),
        ("/u/AbC-123_x?source=list", "/u/…?source=…"),
        (
            "/webhooks/postmark?token=s3cret&signature=x&flag",
            "/webhooks/postmark?token=…&signature=…&flag",
        ),
        ("/api/lists/3/recipients?q=ann%40example.com", "/api/lists/3/recipients?q=…"),
        ("/lists", "/lists"),
        ("/other/o/abc", "/other/o/abc"),
    ],
)
def test_tokens_in_paths_and_every_query_value_are_redacted(target: str, logged: str) -> None:
    assert redacted_request_target(target) == logged


def test_the_filter_rewrites_the_request_line_uvicorn_logs_and_keeps_the_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "GET", "/c/secret-token?key=k", "1.1", 302)
    assert RedactedAccessLog().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/c/…?key=…", "1.1", 302)


def _environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY=SECRET_KEY,
        EDM_POSTMARK_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
    )
    return environment


def _requests_logged_by(command: str, database_url: str, tmp_path: Path) -> tuple[str, list[str]]:
    """Serve with ``edm <command>``, request tracking URLs and the Postmark webhook with real
    tokens, stop; the server's whole output and the tokens it must not show."""
    secret = SECRET_KEY.encode()
    tokens = [
        sign_job_token(secret, "open", 1),
        sign_link_token(secret, 1, 2),
        sign_job_token(secret, "unsubscribe", 1),
        WEBHOOK_TOKEN,
    ]
    log_path = tmp_path / f"{command}.log"
    with edm_web_server(command, _environment(database_url, tmp_path), log_path) as port:
        base_url = f"http://127.0.0.1:{port}"
        fetch(f"{base_url}/o/{tokens[0]}.gif")
        fetch(f"{base_url}/c/{tokens[1]}")
        fetch(f"{base_url}/u/{tokens[2]}", data=b"List-Unsubscribe=One-Click")
        fetch(f"{base_url}/webhooks/postmark?token={WEBHOOK_TOKEN}", data=b"{}")
    return log_path.read_text(), tokens


@pytest.mark.parametrize("command", ["serve", "track"])
def test_served_access_logs_show_no_tracking_token_and_no_webhook_secret(
    command: str, database_url: str, tmp_path: Path
) -> None:
    output, tokens = _requests_logged_by(command, database_url, tmp_path)
    assert '"GET /o/… HTTP/1.1" 404' in output, output
    assert '"GET /c/… HTTP/1.1" 404' in output, output
    assert '"POST /u/… HTTP/1.1" 404' in output, output
    assert '"POST /webhooks/postmark?token=… HTTP/1.1"' in output, output
    for token in tokens:
        assert token not in output
