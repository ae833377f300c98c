"""Opens and clicks through the Redis stream, against ``edm track`` as real processes.

A campaign is delivered to a real SMTP server; its pixel, click and unsubscribe URLs are then
requested from ``edm track --workers 2`` (which queues events in Redis and writes them in its own
writer threads) by many threads at once, and the rows are counted against the answers.
"""

from __future__ import annotations

import http.client
import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from campaigns.core.events import campaign_counters
from campaigns.core.models import EventKind, Job, JobEvent, utc_now
from campaigns.core.storage import Database
from campaigns.tracking.batch_recording import TrackedEvent, write_tracked_events
from tests.conftest import wait_until
from tests.integration.test_tracking import (
    DESKTOP_MAIL,
    SECRET_KEY,
    _deliver_campaign,
    _edm_env,
    _sent_long_ago,
    _tampered,
)
from tests.tracking_helpers import Delivered, edm_web_server, fetch


def _queued_env(database_url: str, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    environment = _edm_env(database_url, tmp_path)
    environment.update(
        EDM_REDIS_URL=redis_url,
        EDM_SECRET_KEY=SECRET_KEY,
        # A namespace per test: writers of one test never take another test's events.
        EDM_QUEUE_NAME=f"edm-test-{tmp_path.name[-20:]}",
        **extra,
    )
    return environment


def _local(port: int, url: str) -> str:
    return f"http://127.0.0.1:{port}{urlsplit(url).path}"


def _tracked_urls(messages: dict[str, Delivered], port: int) -> list[str]:
    urls = []
    for message in messages.values():
        urls.append(_local(port, message.pixel))
        urls.extend(_local(port, link) for link in message.links.values() if "/c/" in link)
    return urls


def _event_rows(database: Database, campaign_id: int) -> Counter[str]:
    with database.session() as session:
        rows = session.execute(
            select(JobEvent.kind, func.count())
            .where(JobEvent.campaign_id == campaign_id)
            .group_by(JobEvent.kind)
        )
        return Counter({kind: count for kind, count in rows})


def _counters_from_rows(database: Database, campaign_id: int) -> dict[str, int]:
    with database.session() as session:
        events = list(session.scalars(select(JobEvent).where(JobEvent.campaign_id == campaign_id)))
    human = [e for e in events if e.kind == "opened" and not e.detail["machine"]]
    counters = {
        "opens": sum(1 for e in events if e.kind == "opened"),
        "machine_opens": sum(1 for e in events if e.kind == "opened" and e.detail["machine"]),
        "unique_opens": len({e.job_id for e in human}),
        "clicks": sum(1 for e in events if e.kind == "clicked"),
        "unique_clicks": len({e.job_id for e in events if e.kind == "clicked"}),
        "unsubscribes": sum(1 for e in events if e.kind == "unsubscribed"),
    }
    return {name: value for name, value in counters.items() if value}


@pytest.fixture
def campaign(
    database: Database, redis_url: str, tmp_path: Path
) -> Iterator[tuple[int, dict[str, Delivered]]]:
    rows = [(f"p{i}@example.com", f"R{i}") for i in range(12)]
    campaign_id, messages = _deliver_campaign(database, redis_url, tmp_path, rows)
    _sent_long_ago(database)
    yield campaign_id, messages


def test_events_under_concurrent_load_are_written_once_and_counted_exactly(
    database: Database,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    campaign: tuple[int, dict[str, Delivered]],
) -> None:
    campaign_id, messages = campaign
    env = _queued_env(database_url, redis_url, tmp_path)
    with edm_web_server("track", env, tmp_path / "track.log", "--workers", "2") as port:
        urls = _tracked_urls(messages, port) * 10
        agents = [DESKTOP_MAIL, "Mozilla/5.0"]

        def request(index: int) -> int:
            return fetch(urls[index], headers={"User-Agent": agents[index % 2]}).status

        with ThreadPoolExecutor(16) as pool:
            answers = Counter(pool.map(request, range(len(urls))))
        assert set(answers) <= {200, 302}, answers
        expected = Counter({"opened": answers[200], "clicked": answers[302]})
        assert wait_until(lambda: _event_rows(database, campaign_id) == expected, timeout_s=60), (
            _event_rows(database, campaign_id),
            expected,
        )
    assert campaign_counters(database, campaign_id) == _counters_from_rows(database, campaign_id)
    with database.session() as session:
        keys = session.scalar(select(func.count(JobEvent.event_key.distinct())))
    assert keys == sum(expected.values())


def test_forged_tokens_on_the_fast_path_get_404_and_queue_nothing(
    database: Database,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    campaign: tuple[int, dict[str, Delivered]],
) -> None:
    campaign_id, messages = campaign
    message = next(iter(messages.values()))
    link = next(url for url in message.links.values() if "/c/" in url)
    env = _queued_env(database_url, redis_url, tmp_path)
    with edm_web_server("track", env, tmp_path / "track.log") as port:
        # The real link first, so its URL is cached and the fast path would answer its clicks.
        assert fetch(_local(port, link)).status == 302
        forged = [_tampered(message.pixel), _tampered(link), "/o/x.gif", "/c/x"]
        assert [fetch(_local(port, url)).status for url in forged] == [404] * len(forged)
        only_the_real_click = {"clicked": 1}
        assert wait_until(
            lambda: _event_rows(database, campaign_id) == only_the_real_click, timeout_s=60
        )
    assert _event_rows(database, campaign_id) == {"clicked": 1}


def _stalled_post(port: int, url: str) -> socket.socket:
    """An unsubscribe POST whose body never comes: it stays in flight until the socket closes."""
    path = urlsplit(url).path
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 26\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\nList-".encode()
    )
    return connection


def test_past_the_in_flight_bound_pixels_get_503_while_clicks_and_unsubscribes_work(
    database: Database,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    campaign: tuple[int, dict[str, Delivered]],
) -> None:
    campaign_id, messages = campaign
    env = _queued_env(database_url, redis_url, tmp_path, EDM_TRACKING_MAX_IN_FLIGHT="1")
    first, second, third = (messages[f"p{i}@example.com"] for i in range(3))
    with edm_web_server("track", env, tmp_path / "track.log") as port:
        pixel = _local(port, first.pixel)
        assert fetch(pixel).status == 200
        stalled = _stalled_post(port, first.list_unsubscribe)
        try:
            assert wait_until(lambda: fetch(pixel).status == 503, timeout_s=30)
            busy = fetch(pixel)
            assert busy.status == 503 and busy.headers["Retry-After"] == "1"
            click = fetch(_local(port, second.links["Spring sale"]))
            assert click.status == 302 and click.headers["Location"].startswith("https://shop.")
            unsubscribed = fetch(
                _local(port, third.list_unsubscribe), data=b"List-Unsubscribe=One-Click"
            )
            assert unsubscribed.status == 200
            assert _event_rows(database, campaign_id)["unsubscribed"] == 1
        finally:
            stalled.sendall(b"Unsubscribe=One-Click")
            response = http.client.HTTPResponse(stalled)
            response.begin()
            assert response.status == 200
            stalled.close()
        assert wait_until(lambda: fetch(pixel).status == 200, timeout_s=30)
        # The pixels answered 200 are written too; the click and both unsubscribes once each.
        assert wait_until(lambda: _event_rows(database, campaign_id)["clicked"] == 1, timeout_s=30)
        assert _event_rows(database, campaign_id)["unsubscribed"] == 2
    assert campaign_counters(database, campaign_id) == _counters_from_rows(database, campaign_id)


def test_a_batch_delivered_again_is_not_counted_again(
    database: Database, campaign: tuple[int, dict[str, Delivered]]
) -> None:
    campaign_id, _ = campaign
    with database.session() as session:
        job_ids = list(session.scalars(select(Job.id).where(Job.campaign_id == campaign_id)))
    now = utc_now()
    batch = [
        TrackedEvent(f"1-{i}", EventKind.OPENED, job_id, now, DESKTOP_MAIL)
        for i, job_id in enumerate(job_ids[:3])
    ] + [TrackedEvent("2-0", EventKind.CLICKED, job_ids[0], now, DESKTOP_MAIL, link_id=7)]
    assert write_tracked_events(database, batch) == 4
    counted = campaign_counters(database, campaign_id)
    # The writer died after its commit and before acknowledging: the same entries come again,
    # in a batch with one new one.
    again = [*batch, TrackedEvent("3-0", EventKind.OPENED, job_ids[1], now, "Mozilla/5.0")]
    assert write_tracked_events(database, again) == 1
    assert counted == {"opens": 3, "unique_opens": 3, "clicks": 1, "unique_clicks": 1}
    assert campaign_counters(database, campaign_id) == {**counted, "opens": 4, "machine_opens": 1}
    assert campaign_counters(database, campaign_id) == _counters_from_rows(database, campaign_id)
