from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.bounces.verp import MessageIdMatch, find_message_id, message_id_tagger
from campaigns.content.message import MessageSkeleton, message_id_for
from campaigns.content.templating import CompiledTemplate, RenderedMessage, load_template
from campaigns.core.errors import InputError
from campaigns.core.settings import PROJECT_ROOT

CAMPAIGN_UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
UNSUBSCRIBE_URL = "https://mail.example.com/u/b5tq3vx2k4mzyarjfa"
DATE = datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC)
EXPECTED_HEADER_NAMES = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]
RENDERED = RenderedMessage(
    subject="Your March update",
    html="<html><body><p>Hello Ann</p></body></html>",
    text="Hello Ann\n",
)


def build(
    rendered: RenderedMessage = RENDERED,
    *,
    from_address: str = "Northwind <news@example.com>",
    to_address: str = "ann@example.org",
    to_name: str | None = None,
    job_id: int = 42,
    mailto: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    skeleton = MessageSkeleton(
        from_address=from_address, campaign_uuid=CAMPAIGN_UUID, list_unsubscribe_mailto=mailto
    )
    return skeleton.build(
        job_id=job_id,
        to_address=to_address,
        rendered=rendered,
        unsubscribe_url=UNSUBSCRIBE_URL,
        date=DATE,
        to_name=to_name,
        extra_headers=extra_headers,
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.defects == []
    return message


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def content(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    assert part.get_content_type() == f"text/{subtype}"
    assert part.get_content_charset() == "utf-8"
    return part.get_content().replace("\r\n", "\n")


# --- the whole message --------------------------------------------------------------------------


def test_a_message_parses_back_to_exactly_the_expected_headers_and_parts() -> None:
    message = parse(build(to_name="Ann Lee", mailto="unsubscribe@example.com"))

    assert list(message.keys()) == EXPECTED_HEADER_NAMES
    assert message["From"] == "Northwind <news@example.com>"
    assert message["To"] == "Ann Lee <ann@example.org>"
    assert message["Subject"] == "Your March update"
    assert message["Date"] == "Fri, 01 Mar 2024 12:30:05 +0000"
    assert message["Message-ID"] == f"<{CAMPAIGN_UUID}.42@example.com>"
    assert message["List-Unsubscribe"] == (f"<{UNSUBSCRIBE_URL}>, <mailto:unsubscribe@example.com>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert content(message, "plain") == RENDERED.text
    assert content(message, "html") == RENDERED.html


def test_without_a_mailto_list_unsubscribe_holds_just_the_url() -> None:
    message = parse(build())

    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>"


def test_a_mailto_without_the_scheme_gets_it() -> None:
    message = parse(build(mailto="leave+list@example.com?subject=unsubscribe"))

    assert message["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE_URL}>, <mailto:leave+list@example.com?subject=unsubscribe>"
    )


def test_every_line_ends_in_crlf_and_none_is_longer_than_998_octets() -> None:
    long_line = "x" * 5000
    data = build(RenderedMessage(subject="s", html=f"<p>{long_line}</p>", text=long_line + "\n"))

    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert data.endswith(b"\r\n")
    assert max(len(line) for line in data.split(b"\r\n")) <= 76
    message = parse(data)
    assert content(message, "plain") == long_line + "\n"
    assert content(message, "html") == f"<p>{long_line}</p>"


def test_the_shipped_newsletter_survives_the_round_trip() -> None:
    compiled = CompiledTemplate(load_template("newsletter", PROJECT_ROOT / "templates"))
    rendered = compiled.render(
        {
            "first_name": "Zoë",
            "city": "Kraków",
            "plan": "Pro",
            "email": "zoe@example.org",
            "campaign_name": "Spring news",
            "unsubscribe_url": UNSUBSCRIBE_URL,
        }
    )

    data = build(rendered, to_name="Zoë Côté")
    message = parse(data)

    assert message["Subject"] == "Zoë, your Pro update from Northwind"
    assert message["To"] == "Zoë Côté <ann@example.org>"
    assert content(message, "plain") == rendered.text
    assert content(message, "html") == rendered.html
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_line_breaks_in_bodies_become_crlf() -> None:
    rendered = RenderedMessage(subject="s", html="<p>a</p>\r\n<p>b</p>\r<p>c</p>", text="a\nb\r\nc")

    message = parse(build(rendered))

    assert content(message, "html") == "<p>a</p>\n<p>b</p>\n<p>c</p>"
    assert content(message, "plain") == "a\nb\nc"


# --- encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_name", "to_name", "subject"),
    [
        ("Северный ветер", "Иван Петров", "Иван, ваши новости за март"),
        ("北風ニュース", "山田太郎", "山田さん、3月のお知らせ"),
        ("Northwind 🌬️", "Ann 🎉", "🎉 Ann, it's launch day 🚀"),
        ("Zoë & Co", "Søren Øberg", "Ångström, your café update"),
    ],
)
def test_non_ascii_names_and_subjects_survive_as_rfc2047(
    from_name: str, to_name: str, subject: str
) -> None:
    rendered = RenderedMessage(subject=subject, html="<p>x</p>", text="x\n")

    data = build(rendered, from_address=f"{from_name} <news@example.com>", to_name=to_name)
    message = parse(data)

    assert message["From"].addresses[0].display_name == from_name
    assert message["From"].addresses[0].addr_spec == "news@example.com"
    assert message["To"].addresses[0].display_name == to_name
    assert message["Subject"] == subject
    headers = header_lines(data)
    assert all(line.isascii() and len(line) < 78 for line in headers)
    assert b"=?utf-8?b?" in data.split(b"\r\n\r\n", 1)[0]


def test_a_long_subject_is_folded_below_78_characters_per_line() -> None:
    subject = " ".join(["Северный ветер приносит новости"] * 8)
    ascii_subject = " ".join(["The northern wind brings news"] * 8)

    for text in (subject, ascii_subject):
        data = build(RenderedMessage(subject=text, html="<p>x</p>", text="x\n"))

        subject_lines = [line for line in header_lines(data) if b"=?" in line or b"wind" in line]
        assert len(subject_lines) > 1
        assert all(len(line) < 78 for line in header_lines(data))
        assert parse(data)["Subject"] == text


def test_a_plain_subject_that_looks_like_an_encoded_word_stays_literal() -> None:
    subject = "Use =?utf-8?q?this?= literally"

    message = parse(build(RenderedMessage(subject=subject, html="<p>x</p>", text="x\n")))

    assert message["Subject"] == subject


def test_a_long_display_name_reads_correctly_to_an_rfc2047_decoder() -> None:
    # Python's own parser keeps the space between encoded-words in a name; mail clients follow
    # RFC 2047 and drop it, so the name is checked with the RFC 2047 decoder.
    name = "Александра Константиновна Петрова-Водкина"

    data = build(to_name=name)

    header_block = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    folded_to = re.search(r"^To: (.*?)\r\n(?! )", header_block, re.MULTILINE | re.DOTALL)
    assert folded_to is not None
    raw_name, address = folded_to.group(1).replace("\r\n", "").rsplit(" ", 1)
    assert raw_name.count("=?utf-8?b?") == 2
    assert str(make_header(decode_header(raw_name))) == name
    assert address == "<ann@example.org>"
    assert all(len(line) < 78 for line in header_lines(data))


def test_ascii_names_needing_quotes_are_quoted() -> None:
    message = parse(
        build(from_address='"Lee, Ann \\"Ace\\"" <ann@example.com>', to_name="O'Neil, Bo")
    )

    assert message["From"].addresses[0].display_name == 'Lee, Ann "Ace"'
    assert message["To"].addresses[0].display_name == "O'Neil, Bo"


def test_mostly_ascii_bodies_are_quoted_printable_and_cjk_bodies_base64() -> None:
    cjk = "山田さん、こんにちは。" * 50
    html = "<p>Café crème for everyone who reads this newsletter</p>"
    rendered = RenderedMessage(subject="s", html=html, text=cjk + "\n")

    message = parse(build(rendered))

    text_part, html_part = message.iter_parts()
    assert text_part["Content-Transfer-Encoding"] == "base64"
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(message, "plain") == cjk + "\n"
    assert content(message, "html") == html


def test_from_and_dot_lines_are_encoded_so_relays_cannot_mangle_them() -> None:
    text = "From the team\n.\nFrom here on\n..and dots\n"

    data = build(RenderedMessage(subject="s", html="<p>x</p>", text=text))

    body = data.split(b"\r\n\r\n", 1)[1]
    assert not re.search(rb"(?m)^(From |\.)", body)
    assert b"=46rom the team\r\n=2E\r\n=46rom here on\r\n=2E.and dots" in body
    assert content(parse(data), "plain") == text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(st.sampled_from("ab =.\t\u00e9\u5c71\U0001f389F"), max_size=200), max_size=6
    ).map("\n".join)
)
def test_quoted_printable_lines_decode_to_the_text_and_stay_short(text: str) -> None:
    # Long lines, trailing spaces and tabs, "=", non-ASCII and empty lines, encoded line by line.
    data = build(RenderedMessage(subject="s", html=text + "<p>x</p>", text="x\n" + text))

    message = parse(data)
    assert content(message, "plain") == "x\n" + text
    assert content(message, "html") == text + "<p>x</p>"
    for part in message.iter_parts():
        if part["Content-Transfer-Encoding"] == "quoted-printable":
            lines = part.get_payload().splitlines()
            assert max(len(line) for line in lines) <= 76
            assert not any(line.endswith((" ", "\t")) for line in lines)


def test_the_boundary_is_random_per_campaign_and_absent_from_the_bodies() -> None:
    first = build()
    second = build()

    boundaries = [parse(data).get_boundary() for data in (first, second)]
    assert boundaries[0] != boundaries[1]
    for boundary, data in zip(boundaries, (first, second), strict=True):
        assert boundary is not None and boundary.startswith("=_")
        assert data.count(f"--{boundary}".encode()) == 3


# --- identity -----------------------------------------------------------------------------------


def test_message_id_is_stable_for_a_job_and_unique_across_jobs_and_campaigns() -> None:
    skeleton = MessageSkeleton(from_address="news@example.com", campaign_uuid=CAMPAIGN_UUID)
    other_campaign = MessageSkeleton(from_address="news@example.com", campaign_uuid="c2")

    def message_id(builder: MessageSkeleton, job_id: int) -> str:
        data = builder.build(
            job_id=job_id,
            to_address="ann@example.org",
            rendered=RENDERED,
            unsubscribe_url=UNSUBSCRIBE_URL,
        )
        return str(parse(data)["Message-ID"])

    assert message_id(skeleton, 7) == message_id(skeleton, 7) == f"<{CAMPAIGN_UUID}.7@example.com>"
    assert message_id(skeleton, 8) == f"<{CAMPAIGN_UUID}.8@example.com>"
    assert message_id(other_campaign, 7) == "<c2.7@example.com>"
    assert message_id_for("u", 3, "example.net") == "<u.3@example.net>"


def test_a_tagged_message_id_names_its_job_and_a_guessed_one_does_not() -> None:
    secret = b"message-id-secret"
    skeleton = MessageSkeleton(
        from_address="news@example.com",
        campaign_uuid=CAMPAIGN_UUID,
        message_id_tag=message_id_tagger(secret),
    )

    def message_id(job_id: int) -> str:
        data = skeleton.build(
            job_id=job_id,
            to_address="ann@example.org",
            rendered=RENDERED,
            unsubscribe_url=UNSUBSCRIBE_URL,
        )
        return str(parse(data)["Message-ID"])

    tag = message_id_tagger(secret)(7)
    assert message_id(7) == message_id(7) == f"<{CAMPAIGN_UUID}.7.{tag}@example.com>"
    assert message_id(7) != message_id(8)
    assert message_id_for("u", 3, "example.net", "tag") == "<u.3.tag@example.net>"
    assert find_message_id(secret, message_id(7)) == MessageIdMatch(CAMPAIGN_UUID, 7)
    # The next job's id with this job's tag, an untagged id, another secret: none names a job.
    guessed = message_id(7).replace(".7.", ".8.")
    untagged = message_id_for(CAMPAIGN_UUID, 7, "example.com")
    for forged, key in ((guessed, secret), (untagged, secret), (message_id(7), b"other")):
        assert find_message_id(key, forged) == MessageIdMatch(CAMPAIGN_UUID, None)


def test_the_date_defaults_to_now_and_keeps_a_given_time_zone() -> None:
    skeleton = MessageSkeleton(from_address="news@example.com", campaign_uuid="c")
    paris = timezone(timedelta(hours=1))

    now_message = parse(
        skeleton.build(
            job_id=1, to_address="a@example.org", rendered=RENDERED, unsubscribe_url="https://u/1"
        )
    )
    paris_message = parse(
        skeleton.build(
            job_id=1,
            to_address="a@example.org",
            rendered=RENDERED,
            unsubscribe_url="https://u/1",
            date=datetime(2024, 3, 1, 13, 0, tzinfo=paris),
        )
    )

    sent = parsedate_to_datetime(str(now_message["Date"]))
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=1)
    assert paris_message["Date"] == "Fri, 01 Mar 2024 13:00:00 +0100"


def test_the_sender_address_and_domain_come_from_the_from_address() -> None:
    named = MessageSkeleton(from_address="Northwind <News@Example.com>", campaign_uuid="c")
    bare = MessageSkeleton(from_address="  news@mail.example.com ", campaign_uuid="c")
    idn = MessageSkeleton(from_address="Bücher <news@bücher.de>", campaign_uuid="c")

    assert (named.sender_address, named.sender_domain) == ("News@Example.com", "Example.com")
    assert (bare.sender_address, bare.sender_domain) == (
        "news@mail.example.com",
        "mail.example.com",
    )
    assert (idn.sender_address, idn.sender_domain) == (
        "news@xn--bcher-kva.de",
        "xn--bcher-kva.de",
    )


def test_a_bare_from_address_gives_a_bare_from_header() -> None:
    data = build(from_address="news@example.com")

    assert b"\r\nFrom: news@example.com\r\n" in b"\r\n" + data
    assert parse(data)["From"] == "news@example.com"


# --- refusing bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "from_address",
    [
        "not an address",
        "Ann <ann@@example.com>",
        "Ann <ann@exa mple.com>",
        "ann@example.com\r\nBcc: victim@example.net",
        "Ann <ann@-example.com>",
        "Ann <>",
        "",
    ],
)
def test_an_invalid_from_address_is_an_input_error_naming_it(from_address: str) -> None:
    with pytest.raises(InputError) as raised:
        MessageSkeleton(from_address=from_address, campaign_uuid="c")

    assert str(raised.value).startswith(f"from address {from_address!r}: ")


@pytest.mark.parametrize(
    "to_address",
    ["ann@example.org\r\nBcc: victim@example.net", "ann example@example.org", "ann", "ann@"],
)
def test_an_invalid_to_address_is_an_input_error(to_address: str) -> None:
    with pytest.raises(InputError) as raised:
        build(to_address=to_address)

    assert repr(to_address) in str(raised.value)


def test_an_unsubscribe_url_with_a_line_break_is_refused() -> None:
    skeleton = MessageSkeleton(from_address="news@example.com", campaign_uuid="c")

    with pytest.raises(InputError) as raised:
        skeleton.build(
            job_id=1,
            to_address="a@example.org",
            rendered=RENDERED,
            unsubscribe_url="https://u.example/1>\r\nBcc: victim@example.net",
        )

    assert str(raised.value).startswith("unsubscribe URL 'https://u.example/1>")


def test_injection_through_subject_names_and_extra_headers_adds_no_header() -> None:
    attack = "x\r\nBcc: victim@example.net\r\n\r\n<p>forged body</p>"
    rendered = RenderedMessage(subject=f"Hello {attack}", html="<p>real</p>", text="real\n")

    data = build(
        rendered,
        from_address=f'"{attack.replace(chr(13), "").replace(chr(10), "")}" <news@example.com>',
        to_name=attack,
        extra_headers={"X-Campaign": attack, "Feedback-ID": "spring:newsletter"},
    )
    message = parse(data)

    assert list(message.keys()) == [
        *EXPECTED_HEADER_NAMES[:7],
        "X-Campaign",
        "Feedback-ID",
        *EXPECTED_HEADER_NAMES[7:],
    ]
    assert message["Bcc"] is None
    assert message["From"].addresses[0].display_name == "xBcc: victim@example.net<p>forged body</p>"
    assert message["Subject"] == "Hello x Bcc: victim@example.net <p>forged body</p>"
    assert message["X-Campaign"] == "x Bcc: victim@example.net <p>forged body</p>"
    assert message["To"].addresses[0].display_name == (
        "x Bcc: victim@example.net <p>forged body</p>"
    )
    assert message["To"].addresses[0].addr_spec == "ann@example.org"
    assert content(message, "html") == "<p>real</p>"


def test_a_from_address_with_a_line_break_is_refused_rather_than_cleaned() -> None:
    with pytest.raises(InputError):
        MessageSkeleton(
            from_address="News\r\nBcc: x@example.net <news@example.com>", campaign_uuid="c"
        )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("X Bad", "is not a valid header field name"),
        ("X-Bad:", "is not a valid header field name"),
        ("X-Bad\r\nBcc", "is not a valid header field name"),
        ("", "is not a valid header field name"),
        ("subject", "would duplicate one the message always has"),
        ("List-Unsubscribe", "would duplicate one the message always has"),
    ],
)
def test_an_extra_header_with_a_bad_or_duplicate_name_is_refused(name: str, reason: str) -> None:
    with pytest.raises(InputError) as raised:
        build(extra_headers={name: "value"})

    assert reason in str(raised.value)
