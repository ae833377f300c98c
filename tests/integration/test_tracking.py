"""Open pixel, click redirects and one-click unsubscribe, taken from real delivered messages.

Each test delivers a campaign in-process to a real SMTP server, parses what arrived, and requests
the URLs it found from the tracking app (FastAPI's TestClient, or ``edm track`` as a real uvicorn
process), then checks what the database says.

What needs no delivery is in tests/unit/test_tracking.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from campaigns.core.events import campaign_counters, job_history
from campaigns.core.models import (
    Campaign,
    CampaignLink,
    Job,
    JobEvent,
    Recipient,
    Suppression,
    utc_now,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from campaigns.tracking.links import link_id_for, register_links
from campaigns.tracking.tokens import sign_job_token, sign_link_token
from public_endpoints.tracking import TRANSPARENT_GIF
from public_endpoints.tracking_app import create_tracking_app
from tests.conftest import run_edm, wait_until
from tests.delivery_helpers import deliver, delivery_context, publish_due_jobs
from tests.smtp_server import RecordingSmtpServer
from tests.tracking_helpers import (
    Delivered,
    accepts_connections,
    fetch,
    free_port,
    parse_delivered,
)

BASE_URL = "https://mail.example.test"
SECRET_KEY = "k"  # the key tests.delivery_helpers signs with
DESKTOP_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
SPRING_URL = "https://shop.example/spring?utm_source=edm&utm_campaign=spring"

HTML_TEMPLATE = """<!DOCTYPE html>
<html><head><title>News</title></head>
<body>
<p id="top">Hello {{ first_name }}</p>
<a href="https://shop.example/spring?utm_source=edm&amp;utm_campaign=spring">Spring sale</a>
<a class="ref" href="https://shop.example/r?ref={{ ref }}">Your referral link</a>
<a href="mailto:help@shop.example">Mail us</a>
<a href="tel:+15551234567">Call us</a>
<a href="#top">Back to top</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body>
</html>
"""


def _campaign(
    database: Database,
    tmp_path: Path,
    rows: Sequence[tuple[str, str]],
    *,
    tracking: bool = True,
    list_name: str = "people",
) -> int:
    """A scheduled campaign to ``rows`` of (address, ref) with the links template."""
    folder = tmp_path / "template"
    if not folder.exists():
        folder.mkdir()
        (folder / "subject.txt").write_text("News for {{ first_name }}")
        (folder / "body.html").write_text(HTML_TEMPLATE)
    csv_path = tmp_path / f"{list_name}.csv"
    csv_path.write_text(
        "email,first_name,ref\n" + "".join(f"{a},Name{i},{r}\n" for i, (a, r) in enumerate(rows))
    )
    import_recipients(database, csv_path, list_name)
    campaign = create_campaign(
        database,
        name="Spring",
        list_name=list_name,
        template=str(folder),
        from_address="Shop <news@shop.example>",
        templates_dir=tmp_path,
        tracking=tracking,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    return campaign.id


def _send(database: Database, redis_url: str, server: RecordingSmtpServer) -> dict[str, Delivered]:
    """Deliver every due job; the messages that arrived, by lower-cased recipient."""
    before = len(server.messages)
    deliver(
        delivery_context(database, server, redis_url, base_url=BASE_URL), publish_due_jobs(database)
    )
    return {
        message.rcpt_tos[0].lower(): parse_delivered(message.data)
        for message in server.messages[before:]
    }


def _deliver_campaign(
    database: Database,
    redis_url: str,
    tmp_path: Path,
    rows: Sequence[tuple[str, str]],
    *,
    tracking: bool = True,
) -> tuple[int, dict[str, Delivered]]:
    campaign_id = _campaign(database, tmp_path, rows, tracking=tracking)
    with RecordingSmtpServer() as server:
        return campaign_id, _send(database, redis_url, server)


@pytest.fixture
def client(database: Database) -> Iterator[TestClient]:
    app = create_tracking_app(Settings(secret_key=SECRET_KEY), database=database)
    with TestClient(app) as test_client:
        yield test_client


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _job(database: Database, address: str) -> Job:
    with database.session() as session:
        job = session.scalar(
            select(Job)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(Recipient.email_key == address.lower())
        )
        assert job is not None
        return job


def _sent_long_ago(database: Database) -> None:
    """As if the messages had been delivered an hour ago: later opens are a reader's."""
    with database.session() as session:
        session.execute(update(Job).values(sent_at=utc_now() - timedelta(hours=1)))


def _sent_just_now(database: Database) -> None:
    """As if the relay had taken the messages this instant, however slow the test machine."""
    with database.session() as session:
        session.execute(update(Job).values(sent_at=utc_now()))


def _suppression(database: Database, address: str) -> Suppression | None:
    with database.session() as session:
        return session.get(Suppression, address.lower())


def _event_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(JobEvent)) or 0


# --- What the message holds -------------------------------------------------------------------


def test_a_tracked_message_has_a_pixel_and_opaque_click_links_but_never_the_address(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    address = "ana.lopez@example.com"
    _, messages = _deliver_campaign(database, redis_url, tmp_path, [(address, "ANA7")])
    message = messages[address]

    assert message.pixel.startswith(f"{BASE_URL}/o/") and message.pixel.endswith(".gif")
    assert message.html.index(message.pixel) > message.html.index("Back to top")
    for link_text in ("Spring sale", "Your referral link"):
        assert message.links[link_text].startswith(f"{BASE_URL}/c/")
    assert message.links["Spring sale"] != message.links["Your referral link"]
    assert message.links["Unsubscribe"] == message.list_unsubscribe
    assert message.list_unsubscribe.startswith(f"{BASE_URL}/u/")
    urls = [message.pixel, *message.links.values()]
    assert not any(address in url or "ana.lopez" in url or "%40" in url for url in urls)
    # The text part keeps its plain links.
    assert SPRING_URL in message.text
    assert "/c/" not in message.text


def test_mailto_tel_anchor_and_unsubscribe_links_are_left_as_written(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    _, messages = _deliver_campaign(database, redis_url, tmp_path, [("a@example.com", "A1")])
    links = messages["a@example.com"].links

    assert links["Mail us"] == "mailto:help@shop.example"
    assert links["Call us"] == "tel:+15551234567"
    assert links["Back to top"] == "#top"
    assert "/c/" not in links["Unsubscribe"]


def test_with_tracking_off_there_is_no_pixel_and_no_rewritten_link(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    campaign_id, messages = _deliver_campaign(
        database, redis_url, tmp_path, [("a@example.com", "A1")], tracking=False
    )
    message = messages["a@example.com"]

    assert message.images == []
    assert "/o/" not in message.html and "/c/" not in message.html
    assert message.links["Spring sale"] == SPRING_URL
    assert message.links["Your referral link"] == "https://shop.example/r?ref=A1"
    assert message.links["Unsubscribe"] == message.list_unsubscribe
    with database.session() as session:
        assert session.scalar(select(Campaign.tracking).where(Campaign.id == campaign_id)) is False
        assert session.scalar(select(func.count()).select_from(CampaignLink)) == 0


# --- Opens --------------------------------------------------------------------------------------


def test_the_pixel_returns_a_gif_and_records_a_readers_open(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    campaign_id, messages = _deliver_campaign(
        database, redis_url, tmp_path, [("a@example.com", "A1")]
    )
    _sent_long_ago(database)
    pixel = _path(messages["a@example.com"].pixel)

    first = client.get(pixel, headers={"User-Agent": DESKTOP_MAIL})
    client.get(pixel, headers={"User-Agent": DESKTOP_MAIL})

    assert first.status_code == 200
    assert first.headers["content-type"] == "image/gif"
    assert first.content == TRANSPARENT_GIF and first.content.startswith(b"GIF89a")
    assert "no-store" in first.headers["cache-control"]
    assert campaign_counters(database, campaign_id) == {"opens": 2, "unique_opens": 1}
    job = _job(database, "a@example.com")
    assert job.first_opened_at is not None
    (event, _) = job_history(database, job.id)
    assert event.detail == {"user_agent": DESKTOP_MAIL, "machine": None, "proxy": None}


def test_machine_opens_are_counted_apart_and_never_as_a_readers(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    campaign_id, messages = _deliver_campaign(
        database, redis_url, tmp_path, [("a@example.com", "A1")]
    )
    pixel = _path(messages["a@example.com"].pixel)

    # A scanner at the receiving gateway fetches images the moment the message lands.
    _sent_just_now(database)
    client.get(pixel, headers={"User-Agent": DESKTOP_MAIL})
    _sent_long_ago(database)
    client.get(pixel, headers={"User-Agent": "Mozilla/5.0"})  # Apple Mail Privacy Protection
    job = _job(database, "a@example.com")
    assert job.first_opened_at is None
    assert campaign_counters(database, campaign_id) == {"opens": 2, "machine_opens": 2}
    assert [event.detail["machine"] for event in job_history(database, job.id)] == [
        "seconds_after_delivery",
        "apple_privacy_proxy",
    ]

    gmail = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    client.get(pixel, headers={"User-Agent": gmail})
    assert campaign_counters(database, campaign_id) == {
        "opens": 3,
        "machine_opens": 2,
        "unique_opens": 1,
    }
    last = job_history(database, job.id)[-1]
    assert (last.detail["machine"], last.detail["proxy"]) == (None, "google")


# --- Clicks -------------------------------------------------------------------------------------


def test_a_click_is_recorded_and_redirected_to_the_link_in_the_campaign(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    campaign_id, messages = _deliver_campaign(
        database, redis_url, tmp_path, [("a@example.com", "A1")]
    )
    link = _path(messages["a@example.com"].links["Spring sale"])

    response = client.get(link, follow_redirects=False)
    client.get(link, follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == SPRING_URL
    assert response.headers["referrer-policy"] == "no-referrer"
    assert campaign_counters(database, campaign_id) == {"clicks": 2, "unique_clicks": 1}
    job = _job(database, "a@example.com")
    assert job.first_clicked_at is not None
    assert job_history(database, job.id)[0].detail["link_id"] == str(link_id_for(SPRING_URL))


def test_a_link_with_merge_fields_leads_each_recipient_to_their_own_url(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    rows = [("a@example.com", "AAA1"), ("b@example.com", "BBB2")]
    _, messages = _deliver_campaign(database, redis_url, tmp_path, rows)

    for address, ref in rows:
        link = _path(messages[address].links["Your referral link"])
        response = client.get(link, follow_redirects=False)
        assert response.headers["location"] == f"https://shop.example/r?ref={ref}"


def test_a_signed_click_never_redirects_outside_its_campaigns_links(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    campaign_id, messages = _deliver_campaign(
        database, redis_url, tmp_path, [("a@example.com", "A1")]
    )
    job_id = _job(database, "a@example.com").id
    secret = SECRET_KEY.encode()
    elsewhere = "https://evil.example/login"
    # Another campaign that did send the outside URL.
    with database.session() as session:
        other = Campaign(
            name="other",
            list_id=session.scalar(select(Campaign.list_id).where(Campaign.id == campaign_id)),
            from_address="x@example.com",
            template_name="t",
            subject_template="s",
            html_template="h",
        )
        session.add(other)
        session.flush()
        other_id = other.id
    register_links(database, other_id, {link_id_for(elsewhere): elsewhere})

    never_sent = sign_link_token(secret, job_id, link_id_for(elsewhere))
    assert client.get(f"/c/{never_sent}", follow_redirects=False).status_code == 404
    link = _path(messages["a@example.com"].links["Spring sale"])
    with_target = client.get(f"{link}?url={elsewhere}&next={elsewhere}", follow_redirects=False)
    assert with_target.headers["location"] == SPRING_URL
    assert campaign_counters(database, other_id) == {}


# --- Unsubscribe --------------------------------------------------------------------------------


def test_unsubscribe_get_shows_a_confirmation_form_and_changes_nothing(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    _, messages = _deliver_campaign(database, redis_url, tmp_path, [("a@example.com", "A1")])

    page = client.get(_path(messages["a@example.com"].links["Unsubscribe"]))

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "<button" in page.text
    assert "Shop &lt;news@shop.example&gt;" in page.text
    assert "a@example.com" not in page.text
    assert _suppression(database, "a@example.com") is None
    assert _event_count(database) == 0


def test_one_click_unsubscribe_suppresses_at_once_and_counts_once(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    campaign_id, messages = _deliver_campaign(
        database, redis_url, tmp_path, [("A@Example.com", "A1")]
    )
    url = _path(messages["a@example.com"].list_unsubscribe)

    one_click = client.post(url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    again = client.post(url, data={"unsubscribe": "confirm"}, follow_redirects=False)

    for response in (one_click, again):
        assert response.status_code == 200
        assert "location" not in response.headers
        assert "You are unsubscribed" in response.text
    suppression = _suppression(database, "a@example.com")
    assert suppression is not None and suppression.reason == "unsubscribe"
    assert campaign_counters(database, campaign_id) == {"unsubscribes": 1}
    job = _job(database, "A@Example.com")
    assert job.unsubscribed_at is not None
    assert [(e.kind, e.detail) for e in job_history(database, job.id)] == [
        ("unsubscribed", {"how": "one-click"})
    ]
    assert "You are unsubscribed" in client.get(url).text


def test_an_unsubscribe_is_honoured_by_a_campaign_already_sending(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    rows = [("a@example.com", "A1"), ("b@example.com", "B2")]
    first_campaign = _campaign(database, tmp_path, rows)
    with RecordingSmtpServer() as server:
        messages = _send(database, redis_url, server)
        second_campaign = _campaign(database, tmp_path, rows)
        due = publish_due_jobs(database)
        assert len(due) == 2

        client.post(_path(messages["a@example.com"].list_unsubscribe), data={"x": "y"})
        deliver(delivery_context(database, server, redis_url, base_url=BASE_URL), due)
        second = [m.rcpt_tos for m in server.messages[2:]]

    assert second == [["b@example.com"]]
    with database.session() as session:
        states = dict(
            session.execute(
                select(Recipient.email, Job.state)
                .join(Job, Job.recipient_id == Recipient.id)
                .where(Job.campaign_id == second_campaign)
            ).all()
        )
    assert states == {"a@example.com": "suppressed", "b@example.com": "sent"}
    assert campaign_counters(database, first_campaign) == {"unsubscribes": 1}


# --- Bad tokens ---------------------------------------------------------------------------------


def _tampered(url: str) -> str:
    path = _path(url)
    stem, dot, suffix = path.rpartition(".") if path.endswith(".gif") else (path, "", "")
    position = len(stem) - 5
    replacement = "b" if stem[position] != "b" else "c"
    return stem[:position] + replacement + stem[position + 1 :] + dot + suffix


def test_forged_tampered_and_malformed_tokens_get_a_plain_404_and_record_nothing(
    database: Database,
    redis_url: str,
    tmp_path: Path,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, messages = _deliver_campaign(database, redis_url, tmp_path, [("a@example.com", "A1")])
    message = messages["a@example.com"]
    job_id = _job(database, "a@example.com").id
    other_key = b"not the key"
    urls = [
        _tampered(message.pixel),
        _tampered(message.links["Spring sale"]),
        _tampered(message.list_unsubscribe),
        f"/o/{sign_job_token(other_key, 'open', job_id)}.gif",
        f"/o/{sign_job_token(SECRET_KEY.encode(), 'unsubscribe', job_id)}.gif",
        f"/c/{sign_link_token(other_key, job_id, link_id_for(SPRING_URL))}",
        f"/u/{sign_job_token(SECRET_KEY.encode(), 'open', job_id)}",
        "/o/x.gif",
        "/c/x",
        "/u/x",
        "/c/" + "a" * 5000,
        "/c/%00%0d%0aSet-Cookie:%20x=1",
        "/o/%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F%C3%9F.gif",
        "/u/" + "z" * 40,
    ]
    caplog.set_level(logging.WARNING, logger="public_endpoints.tracking")

    for url in urls:
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 404, url
        assert "Traceback" not in response.text
    for url in (_tampered(message.list_unsubscribe), "/u/x"):
        assert client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 404

    assert _event_count(database) == 0
    assert _suppression(database, "a@example.com") is None
    assert (
        sum("refused a forged or malformed" in r.message for r in caplog.records) == len(urls) + 2
    )


# --- Counters -----------------------------------------------------------------------------------


def test_counters_agree_with_the_events(
    database: Database, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    rows = [(f"p{i}@example.com", f"R{i}") for i in range(4)]
    campaign_id, messages = _deliver_campaign(database, redis_url, tmp_path, rows)
    _sent_just_now(database)
    client.get(_path(messages["p0@example.com"].pixel))  # seconds after delivery: a machine
    _sent_long_ago(database)
    requests = [
        ("get", messages["p0@example.com"].pixel, "Mozilla/5.0"),
        ("get", messages["p0@example.com"].pixel, DESKTOP_MAIL),
        ("get", messages["p1@example.com"].pixel, DESKTOP_MAIL),
        ("get", messages["p1@example.com"].pixel, DESKTOP_MAIL),
        ("get", messages["p1@example.com"].links["Spring sale"], DESKTOP_MAIL),
        ("get", messages["p1@example.com"].links["Your referral link"], DESKTOP_MAIL),
        ("get", messages["p2@example.com"].links["Spring sale"], DESKTOP_MAIL),
        ("post", messages["p2@example.com"].list_unsubscribe, DESKTOP_MAIL),
        ("post", messages["p2@example.com"].list_unsubscribe, DESKTOP_MAIL),
        ("post", messages["p3@example.com"].list_unsubscribe, DESKTOP_MAIL),
    ]
    for method, url, agent in requests:
        response = client.request(
            method, _path(url), headers={"User-Agent": agent}, follow_redirects=False
        )
        assert response.status_code in (200, 302)

    with database.session() as session:
        events = list(session.scalars(select(JobEvent).where(JobEvent.campaign_id == campaign_id)))
    by_kind = Counter(event.kind for event in events)
    human_openers = {e.job_id for e in events if e.kind == "opened" and not e.detail["machine"]}
    expected = {
        "opens": by_kind["opened"],
        "machine_opens": sum(1 for e in events if e.kind == "opened" and e.detail["machine"]),
        "unique_opens": len(human_openers),
        "clicks": by_kind["clicked"],
        "unique_clicks": len({e.job_id for e in events if e.kind == "clicked"}),
        "unsubscribes": by_kind["unsubscribed"],
    }
    assert expected == {
        "opens": 5,
        "machine_opens": 2,
        "unique_opens": 2,
        "clicks": 3,
        "unique_clicks": 2,
        "unsubscribes": 2,
    }
    assert campaign_counters(database, campaign_id) == expected


# --- The command line ---------------------------------------------------------------------------


def _edm_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY=SECRET_KEY,
        EDM_DATA_DIR=str(tmp_path / "data"),
    )
    return environment


def test_campaigns_create_no_tracking_makes_an_untracked_campaign(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    env = _edm_env(database_url, tmp_path)
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email\na@example.com\n")
    assert run_edm(["lists", "import", str(csv_path), "--list", "people"], env).returncode == 0
    for extra in ([], ["--no-tracking"]):
        create = [
            *("campaigns", "create", "--name", "n", "--list", "people"),
            *("--template", "newsletter", "--from", "news@example.com", *extra),
        ]
        result = run_edm(create, env)
        assert result.returncode == 0, result.stderr

    with database.session() as session:
        tracking = list(session.scalars(select(Campaign.tracking).order_by(Campaign.id)))
    assert tracking == [True, False]


def test_edm_track_serves_the_links_of_a_delivered_message(
    database: Database, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    campaign_id = _campaign(database, tmp_path, [("a@example.com", "A1")])
    with RecordingSmtpServer() as server:
        deliver(
            delivery_context(database, server, redis_url, base_url=base_url),
            publish_due_jobs(database),
        )
        message = parse_delivered(server.messages[0].data)
    _sent_long_ago(database)
    env = _edm_env(database_url, tmp_path)
    log_path = tmp_path / "track.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edm",
                "track",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: accepts_connections(port), timeout_s=60), log_path.read_text()
        pixel = fetch(message.pixel, headers={"User-Agent": DESKTOP_MAIL})
        click = fetch(message.links["Spring sale"])
        forged = fetch(base_url + _tampered(message.links["Spring sale"]))
        unsubscribe = fetch(
            message.list_unsubscribe,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert (pixel.status, pixel.headers["content-type"], pixel.body) == (
        200,
        "image/gif",
        TRANSPARENT_GIF,
    )
    assert (click.status, click.headers["location"]) == (302, SPRING_URL)
    assert forged.status == 404
    assert unsubscribe.status == 200
    assert campaign_counters(database, campaign_id) == {
        "opens": 1,
        "unique_opens": 1,
        "clicks": 1,
        "unique_clicks": 1,
        "unsubscribes": 1,
    }
    assert _suppression(database, "a@example.com") is not None
    assert "Traceback" not in log_path.read_text()
