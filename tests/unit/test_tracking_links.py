"""Click tokens, link rewriting and the machine-open rules, without a database or a server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.core.storage import Database
from campaigns.tracking.links import LinkTracker, link_id_for
from campaigns.tracking.machine_opens import MachineOpen, image_proxy, machine_open_reason
from campaigns.tracking.tokens import (
    sign_job_token,
    sign_link_token,
    verify_job_token,
    verify_link_token,
)

SECRET = b"0123456789abcdef0123456789abcdef"
BASE_URL = "https://t.example"
LINK_IDS = [0, 1, 31, 32, 2**40 + 7, 2**63 - 1]


# --- Click tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("link_id", LINK_IDS)
@pytest.mark.parametrize("job_id", [0, 1, 123456, 2**63 - 1])
def test_a_click_token_names_its_job_and_link(job_id: int, link_id: int) -> None:
    token = sign_link_token(SECRET, job_id, link_id)

    assert re.fullmatch(r"[a-z2-7]{30,42}", token)
    assert verify_link_token(SECRET, token) == (job_id, link_id)
    assert verify_link_token(SECRET, token.upper()) == (job_id, link_id)


def test_changing_any_character_of_a_click_token_makes_it_invalid() -> None:
    token = sign_link_token(SECRET, 987654, link_id_for("https://shop.example/"))

    for position in range(len(token)):
        for replacement in "a7q":
            if replacement != token[position]:
                forged = token[:position] + replacement + token[position + 1 :]
                assert verify_link_token(SECRET, forged) is None, forged


def test_a_click_token_cannot_be_moved_to_another_link_or_job() -> None:
    token = sign_link_token(SECRET, 5, 100)
    other_link = sign_link_token(SECRET, 5, 101)
    other_job = sign_link_token(SECRET, 6, 100)

    assert verify_link_token(SECRET, token[:-16] + other_link[-16:]) is None
    assert verify_link_token(SECRET, other_job[:-16] + token[-16:]) is None
    assert verify_link_token(b"another key", token) is None


def test_click_and_job_tokens_are_never_taken_for_each_other() -> None:
    click = sign_link_token(SECRET, 5, 7)
    for purpose in ("open", "unsubscribe", "bounce", "click"):
        job_token = sign_job_token(SECRET, purpose, 5)
        assert verify_link_token(SECRET, job_token) is None
        assert verify_job_token(SECRET, purpose, click) is None


def test_only_the_shortest_spelling_of_a_job_id_is_accepted() -> None:
    token = sign_link_token(SECRET, 5, 7)

    assert verify_link_token(SECRET, "a" + token) is None


@pytest.mark.parametrize(
    "garbage",
    ["", "a" * 29, "a" * 30, "z" * 43, "!" * 35, "ß" * 35, "a" * 29 + "\x00", None, 12, b"a" * 35],
)
def test_click_token_garbage_is_refused_without_an_exception(garbage: object) -> None:
    assert verify_link_token(SECRET, garbage) is None  # type: ignore[arg-type]


def test_ids_a_click_token_cannot_hold_are_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="link id out of range"):
        sign_link_token(SECRET, 1, 2**63)
    with pytest.raises(ValueError, match="job id out of range"):
        sign_link_token(SECRET, -1, 1)


# --- Rewriting ----------------------------------------------------------------------------------


def _tracker() -> LinkTracker:
    # rewrite() never touches the database; only apply() registers links.
    return LinkTracker(
        database=Database("sqlite://"), campaign_id=1, base_url=BASE_URL + "/", secret=SECRET
    )


def _click(url: str, job_id: int = 9) -> str:
    return f"{BASE_URL}/c/{sign_link_token(SECRET, job_id, link_id_for(url))}"


def test_every_way_of_writing_an_http_href_is_rewritten_and_reported_for_registration() -> None:
    html = (
        '<p><a href="https://a.example/x?b=1&amp;c=2">one</a>'
        "<A class='x' HREF='http://b.example/'>two</A>"
        "<a\nhref=https://c.example/y>three</a>"
        '<a data-href="https://nope.example/" href=" https://d.example/ ">four</a></p>'
    )

    rewritten, unregistered = _tracker().rewrite(html, job_id=9)

    urls = ["https://a.example/x?b=1&c=2", "http://b.example/", "https://c.example/y"]
    urls.append("https://d.example/")
    assert unregistered == {link_id_for(url): url for url in urls}
    for url in urls:
        assert _click(url) in rewritten
    assert 'data-href="https://nope.example/"' in rewritten
    assert "a.example" not in rewritten


def test_links_that_are_not_web_pages_or_are_this_senders_own_stay_as_written() -> None:
    kept = [
        "mailto:help@shop.example?subject=Hi",
        "tel:+15551234567",
        "#top",
        "/relative/path",
        "sms:+1555",
        "javascript:void(0)",
        f"{BASE_URL}/u/sometoken",
        "https://[::1",
        "https://",
    ]
    html = "".join(f'<a href="{href}">x</a>' for href in kept) + '<abbr href="https://x.example">'

    rewritten, unregistered = _tracker().rewrite(html, job_id=9)

    assert unregistered == {}
    assert rewritten.startswith(html)


def test_the_pixel_goes_last_in_the_body_or_at_the_end() -> None:
    in_body, _ = _tracker().rewrite("<html><body><p>x</p></BODY >\n</html>", job_id=3)
    bare, _ = _tracker().rewrite("<p>x</p>", job_id=3)
    pixel = f'<img src="{BASE_URL}/o/{sign_job_token(SECRET, "open", 3)}.gif"'

    assert re.fullmatch(rf"<html><body><p>x</p>{re.escape(pixel)}[^>]*></BODY >\n</html>", in_body)
    assert bare.startswith("<p>x</p>" + pixel)


def test_a_link_id_depends_on_the_url_only() -> None:
    assert link_id_for("https://a.example/") == link_id_for("https://a.example/")
    assert link_id_for("https://a.example/") != link_id_for("https://a.example")
    assert 0 <= link_id_for("https://a.example/" * 100) < 2**63


# --- Machine opens ------------------------------------------------------------------------------

SENT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=2)
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Outlook"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"


@pytest.mark.parametrize(
    ("user_agent", "opened_at", "expected"),
    [
        (DESKTOP, LATER, None),
        (GMAIL, LATER, None),
        (YAHOO, LATER, None),
        (DESKTOP, SENT + timedelta(seconds=3), MachineOpen.SECONDS_AFTER_DELIVERY),
        (GMAIL, SENT + timedelta(seconds=1), MachineOpen.SECONDS_AFTER_DELIVERY),
        ("Mozilla/5.0", LATER, MachineOpen.APPLE_PRIVACY_PROXY),
        ("", LATER, MachineOpen.NO_USER_AGENT),
        (None, LATER, MachineOpen.NO_USER_AGENT),
        ("python-requests/2.32", LATER, MachineOpen.PROGRAM),
        ("Mozilla/5.0 (compatible; Barracuda-Bot/1.0)", LATER, MachineOpen.PROGRAM),
    ],
)
def test_which_opens_are_machine_made(
    user_agent: str | None, opened_at: datetime, expected: MachineOpen | None
) -> None:
    assert machine_open_reason(user_agent, opened_at=opened_at, sent_at=SENT) == expected


def test_an_open_of_a_message_with_no_send_time_is_judged_by_its_user_agent_alone() -> None:
    assert machine_open_reason(DESKTOP, opened_at=SENT, sent_at=None) is None


def test_image_proxies_are_named() -> None:
    assert (image_proxy(GMAIL), image_proxy(YAHOO), image_proxy(DESKTOP)) == (
        "google",
        "yahoo",
        None,
    )
