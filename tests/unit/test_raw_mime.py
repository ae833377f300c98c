"""A whole submitted message on its way to the relay: kept byte for byte but for the fields a
submission server owns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaigns.bounces.verp import find_message_id, message_id_tagger
from campaigns.content.message import MessageSkeleton
from campaigns.core.errors import InputError
from campaigns.transactional.raw_mime import RawMimePipeline, canonical_message, from_addresses

SECRET = b"secret"
SUBMITTED = (
    b"From: Shop <orders@shop.example>\r\n"
    b"To: ann@example.net\r\n"
    b"Bcc: hidden@example.org,\r\n  other@example.org\r\n"
    b"Message-ID: <mine@app.example>\r\n"
    b"Return-Path: <forged@evil.example>\r\n"
    b"Subject: Receipt\r\n"
    b"X-Order: A-17\r\n"
    b"\r\n"
    b"Body line\r\nMessage-ID: <in-body@evil.example>\r\n"
)


def pipeline(raw: bytes) -> RawMimePipeline:
    skeleton = MessageSkeleton(
        from_address="orders@shop.example",
        campaign_uuid="6f1c2a9e-8d4b-4c3a-9e2f-1b2c3d4e5f60",
        message_id_tag=message_id_tagger(SECRET),
    )
    return RawMimePipeline(raw=raw, skeleton=skeleton)


def test_the_job_message_id_replaces_the_app_one_and_bcc_and_return_path_go() -> None:
    built = pipeline(SUBMITTED).build(job_id=42, date=datetime(2026, 12, 3, tzinfo=UTC))
    header, _, body = built.partition(b"\r\n\r\n")
    assert body == b"Body line\r\nMessage-ID: <in-body@evil.example>\r\n"
    assert b"Bcc" not in header and b"other@example.org" not in header
    assert b"mine@app.example" not in header and b"Return-Path" not in header
    assert header.endswith(b"\r\nSubject: Receipt\r\nX-Order: A-17")
    [message_id] = [line for line in header.split(b"\r\n") if line.startswith(b"Message-ID:")]
    tagged = find_message_id(SECRET, message_id.partition(b": ")[2].decode())
    assert tagged is not None and tagged.job_id == 42
    assert b"Date: Thu, 03 Dec 2026 00:00:00 +0000" in header


def test_a_message_with_bare_line_feeds_is_sent_with_crlf_and_a_date_it_had_is_kept() -> None:
    raw = b"From: a@shop.example\nDate: Mon, 1 Dec 2026 10:00:00 +0000\nSubject: x\n\nhi\n"
    built = pipeline(raw).build(job_id=1)
    assert b"\n" not in built.replace(b"\r\n", b"")
    assert built.count(b"Date:") == 1 and built.endswith(b"\r\n\r\nhi\r\n")


@pytest.mark.parametrize(
    "raw",
    [b"not a header line\r\n\r\nbody", b" folded: first\r\n\r\nbody", b"X-A: " + b"a" * 200_000],
)
def test_what_is_not_a_message_header_is_refused(raw: bytes) -> None:
    with pytest.raises(InputError, match="message:"):
        canonical_message(raw)


def test_the_from_addresses_are_read_from_every_from_field() -> None:
    raw = canonical_message(
        b'From: "Shop, Inc" <orders@shop.example>, b@other.example\r\nfrom: c@third.example\r\n'
        b"\r\nFrom: body@evil.example\r\n"
    )
    assert from_addresses(raw) == ["orders@shop.example", "b@other.example", "c@third.example"]
