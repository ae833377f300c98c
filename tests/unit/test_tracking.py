"""Open pixel, click redirects and one-click unsubscribe: what the tracking app does with no
message delivered.

The tests that deliver to a real SMTP server are in tests/integration/test_tracking.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command as alembic_command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from campaigns.core.events import campaign_counters, job_history
from campaigns.core.models import (
    Campaign,
    Job,
    JobState,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import MIGRATIONS_DIR, Database
from campaigns.tracking.tokens import sign_job_token
from public_endpoints.tracking_app import create_tracking_app
from tests.factories import campaign_with_jobs

SECRET_KEY = "k"  # the key tests.delivery_helpers signs with
DESKTOP_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)


@pytest.fixture
def client(database: Database) -> Iterator[TestClient]:
    app = create_tracking_app(Settings(secret_key=SECRET_KEY), database=database)
    with TestClient(app) as test_client:
        yield test_client


def test_an_open_while_the_job_is_still_sending_is_machine_made(
    database: Database, client: TestClient
) -> None:
    campaign_id, (job_id,) = campaign_with_jobs(database, 1)
    with database.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.SENDING))

    token = sign_job_token(SECRET_KEY.encode(), "open", job_id)
    response = client.get(f"/o/{token}.gif", headers={"User-Agent": DESKTOP_MAIL})

    assert response.status_code == 200
    assert campaign_counters(database, campaign_id) == {"opens": 1, "machine_opens": 1}
    assert job_history(database, job_id)[0].detail["machine"] == "seconds_after_delivery"


def test_campaigns_made_before_tracking_existed_are_tracked(database_url: str) -> None:
    database = Database(Settings(database_url=database_url).resolved_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with database.engine.connect() as connection:
            config.attributes["connection"] = connection
            alembic_command.upgrade(config, "0002")
            connection.execute(
                text(
                    "INSERT INTO recipient_lists (id, name, field_names, created_at)"
                    " VALUES (1, 'l', '[]', CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO campaigns (id, uuid, name, list_id, state, from_address,"
                    " template_name, subject_template, html_template, created_at)"
                    " VALUES (1, 'u', 'old', 1, 'draft', 'a@example.com', 't', 's', 'h',"
                    " CURRENT_TIMESTAMP)"
                )
            )
            connection.commit()
        database.upgrade()
        with database.session() as session:
            assert session.scalar(select(Campaign.tracking).where(Campaign.id == 1)) is True
    finally:
        database.dispose()
