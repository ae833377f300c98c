"""``edm serve`` and ``edm track`` answer with the same security headers, from one place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.tracking.tokens import sign_job_token
from dashboard.app import create_app
from public_endpoints.security_headers import SECURITY_HEADERS
from public_endpoints.tracking_app import create_tracking_app

SECRET_KEY = "test-secret"


@pytest.fixture(params=["serve", "track"])
def client(
    request: pytest.FixtureRequest, database: Database, tmp_path: Path
) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SECRET_KEY)
    app: FastAPI = (
        create_app(settings, database=database)
        if request.param == "serve"
        else create_tracking_app(settings, database=database)
    )
    with TestClient(app) as test_client:
        yield test_client


def test_every_answer_forbids_framing_sniffing_and_caching(client: TestClient) -> None:
    unsubscribe = sign_job_token(SECRET_KEY.encode(), "unsubscribe", 1)
    for path in ("/healthz", f"/u/{unsubscribe}", "/o/forged.gif", "/no-such-page"):
        answer = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            if name == "Referrer-Policy" and path.startswith(("/u/", "/o/")):
                # The tracking routes set a stricter one: the redirect target never sees them.
                assert answer.headers[name] == "no-referrer"
                continue
            assert answer.headers[name] == value, (path, name)
        assert "no-store" in answer.headers["cache-control"], path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
