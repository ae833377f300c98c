"""DKIM signatures checked by an independent verifier (dkimpy), against the DNS record that
``edm dkim keygen`` prints.

The CLI, worker start-up and delivery to a real SMTP server are in
tests/integration/test_dkim.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import dkim.canonicalization
import pytest

from campaigns.content.dkim import DkimSigner, relaxed_body, relaxed_header
from campaigns.content.dkim_keys import generate_private_key, signer_from_settings
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import RenderedMessage
from campaigns.core.errors import ConfigError
from campaigns.core.settings import Settings
from tests.dkim_helpers import DOMAIN, SELECTOR, PublishedKey, keygen_in_process
from workers import process_state


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return keygen_in_process(tmp_path_factory.mktemp("keys"), request.param)


def _message() -> bytes:
    skeleton = MessageSkeleton(
        from_address="Zoë Ärger-Ünicode <news@example.com>", campaign_uuid="c0ffee"
    )
    rendered = RenderedMessage(
        subject="Grüße, 你好 and a rather long subject " * 3,
        html="<p>Hallo   \t Welt</p>\n<p>Trailing spaces   </p>\n\n\n",
        text="Hallo Welt  \nZweite Zeile\t\n\n",
    )
    return skeleton.build(
        job_id=7,
        to_address="juergen@example.org",
        to_name="Jürgen Müller",
        rendered=rendered,
        unsubscribe_url="https://mail.example.test/u/abc",
    )


def _tags(signed: bytes) -> dict[str, str]:
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    first = re.match(r"DKIM-Signature:(.*?)\r\n(?![ \t])", header, re.S)
    assert first is not None
    unfolded = re.sub(r"\s+", "", first.group(1))
    return dict(tag.split("=", 1) for tag in unfolded.rstrip(";").split(";"))


def test_a_signed_message_verifies_against_the_printed_dns_record(
    published: PublishedKey,
) -> None:
    signed = published.signer().sign(_message())
    assert published.verifies(signed)


def test_the_signature_covers_both_unsubscribe_headers_and_the_sender_headers(
    published: PublishedKey,
) -> None:
    tags = _tags(published.signer().sign(_message()))
    signed_names = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in signed_names
    assert "list-unsubscribe" in signed_names
    assert "list-unsubscribe-post" in signed_names
    assert (tags["d"], tags["s"], tags["c"]) == (DOMAIN, SELECTOR, "relaxed/relaxed")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda m: m.replace(b"Subject: =?utf-8?b?R3", b"Subject: =?utf-8?b?R4"), id="subject"
        ),
        pytest.param(
            lambda m: m.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),
            id="unsubscribe-post-removed",
        ),
        pytest.param(lambda m: m.replace(b"/u/abc", b"/u/abd"), id="unsubscribe-url"),
        pytest.param(lambda m: m.replace(b"Hallo", b"Hullo", 1), id="body"),
        pytest.param(lambda m: m + b"extra line\r\n", id="body-appended"),
        pytest.param(lambda m: b"From: Mallory <m@evil.example>\r\n" + m, id="second-from"),
        pytest.param(lambda m: b"Reply-To: m@evil.example\r\n" + m, id="added-reply-to"),
    ],
)
def test_tampering_with_a_signed_header_or_the_body_fails_verification(
    published: PublishedKey, tamper: Callable[[bytes], bytes]
) -> None:
    signed = published.signer().sign(_message())
    signature = signature_of(signed)
    rest = signed[len(signature) :]
    tampered = tamper(rest)
    assert tampered != rest
    assert not published.verifies(signature + tampered)


def signature_of(signed: bytes) -> bytes:
    """The DKIM-Signature header, which comes right before From."""
    return signed[: signed.index(b"\r\nFrom:") + 2]


def test_refolding_and_whitespace_changes_on_the_way_still_verify(
    published: PublishedKey,
) -> None:
    signed = published.signer().sign(_message())
    # Relays may unfold or re-fold headers and pad white space; relaxed canonicalisation allows it.
    changed = signed.replace(
        b"Content-Type: multipart/alternative;\r\n boundary=",
        b"Content-Type:  multipart/alternative;  boundary=",
    )
    changed = changed.replace(b"To: =?utf-8?b?", b"To:\t=?utf-8?b?")
    assert changed != signed
    assert published.verifies(changed)


def test_signature_header_lines_stay_short() -> None:
    signer = DkimSigner(generate_private_key("rsa"), domain=DOMAIN, selector=SELECTOR)
    signed = signer.sign(_message(), timestamp=1_700_000_000)
    signature = signature_of(signed)
    assert all(len(line) <= 78 for line in signature.split(b"\r\n"))
    assert b"t=1700000000;" in signature


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"line",
        b"line \t \r\n\r\n",
        b"a  b\t\tc\r\n \r\n\t\r\n",
        b"\t leading\r\nx \r\n \r\n",
        b"one\r\ntwo\r\n",
    ],
)
def test_relaxed_body_matches_an_independent_implementation(body: bytes) -> None:
    assert relaxed_body(body) == dkim.canonicalization.Relaxed.canonicalize_body(body)


def test_a_body_without_final_line_break_is_hashed_as_smtp_will_deliver_it() -> None:
    # SMTP adds the missing CRLF, and the verifier then drops the spaces before it.
    assert relaxed_body(b"line  ") == relaxed_body(b"line  \r\n") == b"line\r\n"


@pytest.mark.parametrize(
    "field",
    [
        b"Subject: plain",
        b"SUBJECT :  padded \t value  ",
        b'Content-Type: multipart/alternative;\r\n boundary="x"',
        b"To:\r\n\tfolded\r\n  twice",
    ],
)
def test_relaxed_header_matches_an_independent_implementation(field: bytes) -> None:
    name, _, value = field.partition(b":")
    [(expected_name, expected_value)] = dkim.canonicalization.Relaxed.canonicalize_headers(
        [(name, value + b"\r\n")]
    )
    assert relaxed_header(field) == expected_name + b":" + expected_value


def test_dkim_needs_all_three_settings_or_none() -> None:
    assert signer_from_settings(Settings()) is None
    with pytest.raises(ConfigError, match="EDM_DKIM_KEY_FILE"):
        signer_from_settings(Settings(dkim_domain=DOMAIN, dkim_selector=SELECTOR))


@pytest.fixture
def fresh_process_state() -> Iterator[None]:
    saved = process_state._context, process_state._owner_pid, process_state._loop
    process_state._context = None
    process_state._owner_pid = None
    yield
    process_state._context, process_state._owner_pid, process_state._loop = saved


def test_each_worker_process_builds_its_signer_from_the_settings(
    published: PublishedKey, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_process_state
) -> None:
    monkeypatch.setenv("EDM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EDM_DKIM_DOMAIN", DOMAIN)
    monkeypatch.setenv("EDM_DKIM_SELECTOR", SELECTOR)
    monkeypatch.setenv("EDM_DKIM_KEY_FILE", str(published.key_file))
    context = process_state.delivery_context()
    try:
        assert context.signer is not None
        assert published.verifies(context.signer.sign(_message()))
    finally:
        context.database.dispose()
        assert process_state._loop is not None
        process_state._loop.close()
