from __future__ import annotations

import re

import pytest

from campaigns.core.storage import Database
from campaigns.tracking.routes import (
    TRACKING_PATHS,
    TokenPurpose,
    click_url,
    open_pixel_url,
    unsubscribe_url,
)
from campaigns.tracking.tokens import sign_job_token, verify_job_token, verify_link_token
from public_endpoints.tracking import tracking_router

SECRET = b"0123456789abcdef0123456789abcdef"
BASE_URL = "https://mail.example.com/"


def test_the_router_serves_every_path_the_builders_write() -> None:
    router = tracking_router(Database("sqlite://"), SECRET)

    assert {route.path for route in router.routes} == set(TRACKING_PATHS)


@pytest.mark.parametrize(
    ("purpose", "spelled"),
    [
        (TokenPurpose.BOUNCE, "bounce"),
        (TokenPurpose.UNSUBSCRIBE, "unsubscribe"),
        (TokenPurpose.OPEN, "open"),
    ],
)
def test_purposes_sign_as_before_so_tokens_already_sent_stay_valid(
    purpose: TokenPurpose, spelled: str
) -> None:
    assert sign_job_token(SECRET, purpose, 42) == sign_job_token(SECRET, spelled, 42)


def test_the_open_pixel_url_carries_an_open_token() -> None:
    url = open_pixel_url(BASE_URL, SECRET, 7)

    token = re.fullmatch(r"https://mail\.example\.com/o/([a-z2-7]+)\.gif", url)
    assert token is not None
    assert verify_job_token(SECRET, TokenPurpose.OPEN, token[1]) == 7
    assert verify_job_token(SECRET, TokenPurpose.UNSUBSCRIBE, token[1]) is None


def test_the_unsubscribe_url_carries_an_unsubscribe_token() -> None:
    url = unsubscribe_url(BASE_URL, SECRET, 7)

    token = re.fullmatch(r"https://mail\.example\.com/u/([a-z2-7]+)", url)
    assert token is not None
    assert verify_job_token(SECRET, TokenPurpose.UNSUBSCRIBE, token[1]) == 7


def test_the_click_url_names_the_job_and_the_link() -> None:
    url = click_url(BASE_URL, SECRET, 7, 12345)

    token = re.fullmatch(r"https://mail\.example\.com/c/([a-z2-7]+)", url)
    assert token is not None
    assert verify_link_token(SECRET, token[1]) == (7, 12345)
