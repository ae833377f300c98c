"""Request bodies on the public routes of a real ``edm track`` and ``edm serve`` process: an
unsubscribe POST far bigger than any RFC 8058 body is refused with 413, whether it declares its
length or streams in small chunks, and unsubscribes nobody; a real one-click POST still works."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from campaigns.core.storage import Database
from campaigns.lists.suppression import iter_suppressions
from campaigns.tracking.routes import UNSUBSCRIBE_PATH, TokenPurpose
from campaigns.tracking.tokens import sign_job_token
from public_endpoints.body_limit import PUBLIC_BODY_MAX_BYTES
from tests.bounce_mail import SentJob, sent_jobs
from tests.tracking_helpers import edm_web_server

SECRET = "body-limit-secret"
CHUNK_BYTES = 1024


@dataclass
class Served:
    port: int
    job: SentJob

    @property
    def unsubscribe_path(self) -> str:
        token = sign_job_token(SECRET.encode(), TokenPurpose.UNSUBSCRIBE, self.job.job_id)
        return UNSUBSCRIBE_PATH.format(token=token)


@pytest.fixture(params=["track", "serve"])
def served(
    request: pytest.FixtureRequest, database: Database, database_url: str, tmp_path: Path
) -> Iterator[Served]:
    (job,) = sent_jobs(database, 1, secret=SECRET.encode())
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"), EDM_DATABASE_URL=database_url, EDM_SECRET_KEY=SECRET
    )
    with edm_web_server(request.param, environment, tmp_path / "server.log") as port:
        yield Served(port, job)


def suppressed(database: Database) -> list[str]:
    return [entry.email_key for entry in iter_suppressions(database)]


def test_a_huge_declared_body_is_refused_before_it_is_sent(
    served: Served, database: Database
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.putrequest("POST", served.unsubscribe_path)
        connection.putheader("Content-Type", "application/x-www-form-urlencoded")
        connection.putheader("Content-Length", str(500_000_000))
        connection.endheaders()  # not one byte of the body: the answer comes on the headers
        answer = connection.getresponse()
        status, detail = answer.status, answer.read().decode()
    finally:
        connection.close()

    assert status == 413
    assert f"({PUBLIC_BODY_MAX_BYTES} bytes)" in detail
    assert suppressed(database) == []


def test_a_body_streamed_past_the_bound_in_small_chunks_is_refused(
    served: Served, database: Database
) -> None:
    body = b"List-Unsubscribe=One-Click&pad=" + b"x" * (PUBLIC_BODY_MAX_BYTES + CHUNK_BYTES)
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.putrequest("POST", served.unsubscribe_path)
        connection.putheader("Content-Type", "application/x-www-form-urlencoded")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        # Just past the bound and no further: the server has read all that was sent when it
        # answers, so it closes cleanly instead of resetting the connection under the answer.
        for start in range(0, len(body), CHUNK_BYTES):
            chunk = body[start : start + CHUNK_BYTES]
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = connection.getresponse()
        status = answer.status
        answer.read()
    finally:
        connection.close()

    assert status == 413
    assert suppressed(database) == []


def test_a_one_click_unsubscribe_is_well_within_the_bound(
    served: Served, database: Database
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request(
            "POST",
            served.unsubscribe_path,
            b"List-Unsubscribe=One-Click",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        status = connection.getresponse().status
    finally:
        connection.close()

    assert status == 200
    assert suppressed(database) == [served.job.recipient]
