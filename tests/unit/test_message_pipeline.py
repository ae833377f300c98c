from __future__ import annotations

import asyncio
from email import message_from_bytes

import pytest

from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import CompiledTemplate, TemplateSource
from campaigns.core.errors import TemplateError
from campaigns.tracking.message_pipeline import MessagePipeline
from campaigns.tracking.routes import unsubscribe_url

SECRET = b"0123456789abcdef0123456789abcdef"
BASE_URL = "https://mail.example.com"


def _pipeline(html: str, *, subject_prefix: str = "") -> MessagePipeline:
    return MessagePipeline(
        campaign_name="News",
        template=CompiledTemplate(
            TemplateSource(name="news", subject="Hi {{ first_name }}", html=html, text=None)
        ),
        skeleton=MessageSkeleton(from_address="news@example.com", campaign_uuid="c-1"),
        base_url=BASE_URL,
        secret=SECRET,
        subject_prefix=subject_prefix,
    )


def test_a_message_is_rendered_for_its_recipient_with_its_own_unsubscribe_link() -> None:
    pipeline = _pipeline('<p>{{ first_name }} <a href="{{ unsubscribe_url }}">leave</a></p>')

    data = asyncio.run(
        pipeline.message_for(job_id=7, email="ann@example.org", fields={"first_name": "Ann"})
    )

    message = message_from_bytes(data)
    link = unsubscribe_url(BASE_URL, SECRET, 7)
    assert message["Subject"] == "Hi Ann"
    assert message["To"] == "ann@example.org"
    assert message["List-Unsubscribe"] == f"<{link}>"
    assert link in data.decode()


def test_a_subject_prefix_marks_every_subject() -> None:
    pipeline = _pipeline("<p>x</p>", subject_prefix="[Test] ")

    rendered = pipeline.render(
        email="a@example.org", fields={"first_name": "A"}, unsubscribe_url="https://u/1"
    )

    assert rendered.subject == "[Test] Hi A"


def test_a_recipient_lacking_a_variable_fails_alone_with_the_reason() -> None:
    pipeline = _pipeline("<p>{{ city }}</p>")

    with pytest.raises(TemplateError, match="city"):
        asyncio.run(
            pipeline.message_for(job_id=1, email="a@example.org", fields={"first_name": "A"})
        )
