"""How big the measured messages are, so the ceiling is measured with messages of the same size."""

from __future__ import annotations

import uuid

from bench.naive_baseline import build_message
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import CompiledTemplate, load_template
from campaigns.core.settings import Settings
from campaigns.tracking.message_pipeline import render_context
from campaigns.tracking.routes import unsubscribe_url

TEMPLATE = "newsletter"


def project_message_bytes(email: str, fields: dict[str, str], *, sender: str) -> int:
    """Size of the project's message for one recipient, as sent (before SMTP dot-stuffing)."""
    settings = Settings()
    compiled = CompiledTemplate(load_template(TEMPLATE, settings.resolved_templates_dir))
    link = unsubscribe_url("https://mail.bench.example", b"bench-secret", 1)
    rendered = compiled.render(
        render_context(campaign_name="Bench", email=email, fields=fields, unsubscribe_url=link)
    )
    skeleton = MessageSkeleton(from_address=sender, campaign_uuid=str(uuid.uuid4()))
    message = skeleton.build(job_id=1, to_address=email, rendered=rendered, unsubscribe_url=link)
    return len(message)


def naive_message_bytes(email: str, fields: dict[str, str]) -> int:
    return len(build_message(email, fields).as_bytes())
