"""``EDM_MAX_UPLOAD_BYTES`` on a real ``edm serve``: an upload over it is refused with 413 as it
arrives, whether it declares its length or not, and leaves no file and no import behind."""

from __future__ import annotations

import http.client
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_edm
from tests.tracking_helpers import edm_web_server

MAX_UPLOAD_BYTES = 4000


@dataclass
class Served:
    port: int
    token: str
    uploads_dir: Path


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY="test-secret",
        EDM_MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
    )
    created = run_edm(
        ["users", "create", "--email", "ops@example.com", "--password-stdin"],
        environment,
        stdin="a long enough password\n",
    )
    assert created.returncode == 0, created.stderr
    token = run_edm(["users", "token", "--email", "ops@example.com"], environment).stdout.strip()
    with edm_web_server("serve", environment, tmp_path / "serve.log") as port:
        yield Served(port, token, tmp_path / "data" / "uploads")


def _multipart(csv_text: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="list"\r\n\r\npeople\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="people.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv_text}\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(served: Served, csv_text: str, *, chunked: bool) -> tuple[int, dict]:
    body, content_type = _multipart(csv_text)
    headers = {"Authorization": f"Bearer {served.token}", "Content-Type": content_type}
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        if chunked:
            pieces = (body[start : start + 1000] for start in range(0, len(body), 1000))
            connection.request("POST", "/api/imports", pieces, headers, encode_chunked=True)
        else:
            connection.request("POST", "/api/imports", body, headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def _imports(served: Served) -> list:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request(
            "GET", "/api/imports", headers={"Authorization": f"Bearer {served.token}"}
        )
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def _csv_of(size_bytes: int) -> str:
    rows = [f"person{number:05d}@example.com" for number in range(size_bytes // 26 + 1)]
    return "email\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["declared-length", "chunked"])
def test_an_upload_over_the_limit_is_refused_with_413_and_leaves_nothing(
    served: Served, chunked: bool
) -> None:
    status, answer = _upload(served, _csv_of(3 * MAX_UPLOAD_BYTES), chunked=chunked)
    assert status == 413
    assert f"EDM_MAX_UPLOAD_BYTES ({MAX_UPLOAD_BYTES} bytes)" in answer["detail"]
    assert _imports(served) == []
    assert not served.uploads_dir.exists() or list(served.uploads_dir.iterdir()) == []


def test_an_upload_within_the_limit_is_accepted(served: Served) -> None:
    status, answer = _upload(served, _csv_of(MAX_UPLOAD_BYTES // 2), chunked=True)
    assert status == 202, answer
    assert [entry["id"] for entry in _imports(served)] == [answer["id"]]
