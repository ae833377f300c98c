"""Property-based run of the dashboard's own OpenAPI description (schemathesis): generated
requests to every operation, signed in with an API token, never answered with a server error.

It needs no service but runs for half a minute, so it sits in the integration tier and keeps the
unit tier under a minute."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from campaigns.core.models import utc_now
from campaigns.core.storage import open_database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from dashboard.accounts import create_user
from dashboard.app import create_app
from dashboard.bearer_tokens import create_api_token
from dashboard.roles import Role
from dashboard.worker_monitor import WorkerMonitor
from tests.dashboard_helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    FAST_PASSWORD_HASHER,
    SAMPLE_CSV,
    dashboard_settings,
)

EXAMPLES_PER_OPERATION = int(os.environ.get("EDM_SCHEMATHESIS_EXAMPLES", "30"))
# These resolve and POST to the URL in the request: generated URLs would send traffic off the
# machine. tests/unit/test_dashboard_webhooks.py covers them with loopback URLs.
OPERATIONS_THAT_REACH_OUT = {"POST /api/webhooks", "POST /api/webhooks/{endpoint_id}/test"}


@pytest.fixture(scope="module")
def served_app() -> Iterator[tuple[object, str]]:
    """The app on a SQLite database holding a list, a draft and a scheduled campaign."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        settings_ = dashboard_settings(root, smtp_url="smtp://127.0.0.1:9")
        database = open_database(f"sqlite:///{root / 'edm.sqlite3'}")
        csv_path = root / "people.csv"
        csv_path.write_text(SAMPLE_CSV)
        import_recipients(database, csv_path, "people")
        for name in ("draft", "scheduled"):
            campaign = create_campaign(
                database,
                name=name,
                list_name="people",
                template="newsletter",
                from_address="news@example.com",
                templates_dir=settings_.resolved_templates_dir,
            )
        schedule_campaign(database, campaign.id, send_at=utc_now())
        create_user(
            database, ADMIN_EMAIL, ADMIN_PASSWORD, role=Role.ADMIN, hasher=FAST_PASSWORD_HASHER
        )
        token = create_api_token(database, ADMIN_EMAIL)
        # Never started: the workers API answers from an empty snapshot, without a Redis.
        monitor = WorkerMonitor(settings_, database)
        app = create_app(settings_, database=database, monitor=monitor)
        yield app, token
        app.state.imports.shutdown()
        database.dispose()


def test_no_generated_request_makes_a_server_error(served_app: tuple[object, str]) -> None:
    app, token = served_app
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_dict(app.openapi())  # type: ignore[attr-defined]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        if operation.label in OPERATIONS_THAT_REACH_OUT:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(app=app, headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as error:
            failures.append(f"{operation.label}: {error!r}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
