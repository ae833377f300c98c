"""``/healthz`` and ``/readyz`` on both web apps, and ``edm status``, against a real Redis, real
databases and real ``edm worker`` processes; a service is made unreachable by pointing at a
closed port, or hung by pointing at a port that accepts connections and never answers."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from campaigns.core.settings import Settings, normalise_database_url
from campaigns.core.storage import Database, open_database
from dashboard.app import create_app
from public_endpoints.tracking_app import create_tracking_app
from tests.conftest import run_edm, wait_until
from tests.dashboard_helpers import dashboard_settings
from tests.tracking_helpers import free_port
from workers.embedded_redis import URL_FILE_NAME

AppFactory = Callable[[Settings, Database], FastAPI]
APPS: dict[str, AppFactory] = {
    "edm serve": lambda settings, database: create_app(settings, database=database),
    "edm track": lambda settings, database: create_tracking_app(settings, database=database),
}
READY = {"status": "ok"}


@pytest.fixture(params=sorted(APPS))
def make_app(request: pytest.FixtureRequest) -> AppFactory:
    return APPS[request.param]


def closed_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def closed_postgres_url() -> str:
    return normalise_database_url(f"postgresql://postgres@127.0.0.1:{free_port()}/edm")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel completes and nobody ever reads or answers: a
    database or Redis that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def probe(app: FastAPI, path: str) -> tuple[int, dict]:
    answer = TestClient(app).get(path)
    assert answer.headers["cache-control"] == "no-store"
    return answer.status_code, answer.json()


def test_both_probes_answer_ok_without_signing_in_when_database_and_redis_answer(
    make_app: AppFactory, database: Database, redis_url: str, tmp_path: Path
) -> None:
    app = make_app(dashboard_settings(tmp_path, redis_url=redis_url), database)

    with TestClient(app) as client:
        healthz = client.get("/healthz")
        readyz = client.get("/readyz")

    assert (healthz.status_code, healthz.json()) == (200, READY)
    assert (readyz.status_code, readyz.json()) == (200, READY)


def test_readyz_names_redis_and_nothing_more_when_redis_does_not_answer(
    make_app: AppFactory, database: Database, tmp_path: Path
) -> None:
    unreachable = closed_redis_url()
    app = make_app(dashboard_settings(tmp_path, redis_url=unreachable), database)

    answer = TestClient(app).get("/readyz")

    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "failing": ["redis"]}
    assert unreachable.rsplit(":", 1)[1].split("/")[0] not in answer.text
    assert probe(app, "/healthz") == (200, READY)


def test_readyz_names_the_database_when_it_does_not_answer(
    make_app: AppFactory, redis_url: str, tmp_path: Path
) -> None:
    # The app keeps running when its database goes away after start-up; a Database object
    # never connects until used, so it stands for that here.
    database = Database(closed_postgres_url())
    app = make_app(dashboard_settings(tmp_path, redis_url=redis_url), database)

    assert probe(app, "/readyz") == (503, {"status": "unavailable", "failing": ["database"]})
    assert probe(app, "/healthz") == (200, READY)


def test_readyz_names_both_when_neither_answers(make_app: AppFactory, tmp_path: Path) -> None:
    database = Database(closed_postgres_url())
    app = make_app(dashboard_settings(tmp_path, redis_url=closed_redis_url()), database)

    status_code, body = probe(app, "/readyz")

    assert status_code == 503
    assert body == {"status": "unavailable", "failing": ["database", "redis"]}


def test_readyz_answers_503_when_the_database_accepts_and_never_answers(
    make_app: AppFactory, redis_url: str, silent_port: int, tmp_path: Path
) -> None:
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/edm")
    app = make_app(dashboard_settings(tmp_path, redis_url=redis_url), database)

    assert probe(app, "/readyz") == (503, {"status": "unavailable", "failing": ["database"]})


def test_readyz_answers_503_when_redis_accepts_and_never_answers(
    make_app: AppFactory, database: Database, silent_port: int, tmp_path: Path
) -> None:
    hung_redis = f"redis://127.0.0.1:{silent_port}/0"
    app = make_app(dashboard_settings(tmp_path, redis_url=hung_redis), database)

    assert probe(app, "/readyz") == (503, {"status": "unavailable", "failing": ["redis"]})


def test_readyz_checks_the_embedded_redis_a_worker_published(
    make_app: AppFactory, database: Database, redis_url: str, tmp_path: Path
) -> None:
    settings = dashboard_settings(tmp_path)
    assert not settings.redis_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = make_app(settings, database)
    published = settings.data_dir / URL_FILE_NAME

    published.write_text(redis_url + "\n")
    assert probe(app, "/readyz") == (200, READY)

    published.write_text(closed_redis_url() + "\n")
    assert probe(app, "/readyz") == (503, {"status": "unavailable", "failing": ["redis"]})


def test_readyz_is_the_database_alone_when_no_redis_is_configured_or_published(
    database: Database, tmp_path: Path
) -> None:
    app = create_tracking_app(dashboard_settings(tmp_path), database=database)

    assert probe(app, "/readyz") == (200, READY)


def test_edm_status_reports_the_worker_and_the_dispatcher(
    edm_env: dict[str, str], start_worker: Callable[..., object]
) -> None:
    worker = start_worker()
    outcome: list = []

    def all_well() -> bool:
        outcome[:] = [run_edm(["status", "--json"], edm_env, timeout_s=60)]
        return outcome[0].returncode == 0

    assert wait_until(all_well, timeout_s=90, interval_s=0.5), outcome[0].stderr
    report = json.loads(outcome[0].stdout)
    # The worker's campaign processes and its transactional lane, each a Celery worker.
    campaign_names, lane_names = sorted(name.split("@")[0] for name in report["workers_online"])
    assert campaign_names == f"edm-{worker.pid}"
    assert lane_names.startswith("tx-edm-")
    assert report["dispatcher_active"] is True
    assert report["database"] == "ok"
    assert report["redis"] == "ok"
    assert report["campaigns_sending"] == 0
    assert isinstance(report["queue_depth"], int)
    assert report["problems"] == []

    readable = run_edm(["status"], edm_env, timeout_s=60)
    assert readable.returncode == 0, readable.stderr
    assert f"edm-{worker.pid}@" in readable.stdout
    assert "(transactional lane)" in readable.stdout
    assert "dispatcher:        active" in readable.stdout


def test_edm_status_with_no_worker_running_fails_with_one_line_per_problem(
    edm_env: dict[str, str],
) -> None:
    open_database(edm_env["EDM_DATABASE_URL"]).dispose()

    outcome = run_edm(["status", "--json"], edm_env, timeout_s=60)

    assert outcome.returncode != 0
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 2, outcome.stderr
    assert "no worker online" in lines[0]
    assert "no dispatcher active" in lines[1]
    report = json.loads(outcome.stdout)
    assert report["workers_online"] == []
    assert report["dispatcher_active"] is False
    assert len(report["problems"]) == 2


def test_edm_status_with_database_and_redis_down_names_each(
    edm_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **edm_env,
        "EDM_DATABASE_URL": closed_postgres_url(),
        "EDM_REDIS_URL": closed_redis_url(),
    }

    outcome = run_edm(["status"], env, timeout_s=60)

    assert outcome.returncode != 0
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 2, outcome.stderr
    assert lines[0].startswith("edm status: database")
    assert lines[1].startswith("edm status: Redis at redis://127.0.0.1:")


def test_edm_status_without_any_redis_says_how_to_get_one(
    edm_env: dict[str, str], tmp_path: Path
) -> None:
    open_database(edm_env["EDM_DATABASE_URL"]).dispose()
    env = {key: value for key, value in edm_env.items() if key != "EDM_REDIS_URL"}

    outcome = run_edm(["status"], env, timeout_s=60)

    assert outcome.returncode != 0
    assert outcome.stderr.strip().splitlines() == [
        "edm status: Redis: none configured (EDM_REDIS_URL) and no worker published one "
        "(start `edm worker`)"
    ]


def test_edm_status_gives_up_on_a_database_that_accepts_and_never_answers(
    edm_env: dict[str, str], silent_port: int
) -> None:
    env = {
        **edm_env,
        "EDM_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{silent_port}/edm",
        "EDM_REDIS_URL": f"redis://127.0.0.1:{silent_port}/0",
    }

    # Before the deadline, this ran into the subprocess timeout.
    outcome = run_edm(["status", "--json"], env, timeout_s=60)

    assert outcome.returncode != 0
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 2, outcome.stderr
    assert lines[0] == (
        f"edm status: database postgresql+psycopg://postgres@127.0.0.1:{silent_port}/edm: "
        "no answer within 5s"
    )
    assert lines[1].startswith(f"edm status: Redis at redis://127.0.0.1:{silent_port}/0: ")
    report = json.loads(outcome.stdout)
    assert report["database"] == lines[0].removeprefix("edm status: ")
    assert report["campaigns_sending"] is None
