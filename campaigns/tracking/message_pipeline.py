"""The one way a campaign's message for one recipient is made: render, track, build, sign.

Delivery, the dashboard's preview and test send, and the check before scheduling all go through
``MessagePipeline``, so what a person previews, what a test send delivers and what recipients
get cannot drift apart. It lives with tracking because tracking is its middle step; the return
path (VERP) is an envelope matter and stays with whoever sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from campaigns.content.isolated_render import render_isolated
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import CompiledTemplate, RenderedMessage
from campaigns.tracking.links import LinkTracker
from campaigns.tracking.routes import unsubscribe_url

if TYPE_CHECKING:
    # Only annotations: DKIM loads the cryptography bindings, which the scheduling check (one
    # unsigned trial message) never needs.
    from campaigns.content.attachments import Attachment
    from campaigns.content.dkim import DkimSigner


def render_context(
    *, campaign_name: str, email: str, fields: Mapping[str, Any], unsubscribe_url: str
) -> dict[str, Any]:
    """The variables a template sees: the recipient's merge fields plus the built-in ones."""
    return {
        **fields,
        "email": email,
        "unsubscribe_url": unsubscribe_url,
        "campaign_name": campaign_name,
    }


@dataclasses.dataclass(frozen=True)
class OneToOneParts:
    """What a one-to-one (transactional) message has that campaign mail has not."""

    to_name: str | None = None
    reply_to: str | None = None
    extra_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    list_unsubscribe: bool = True


@dataclasses.dataclass(frozen=True)
class MessagePipeline:
    """One campaign's steps, built once per campaign (and worker process)."""

    campaign_name: str
    template: CompiledTemplate
    skeleton: MessageSkeleton
    base_url: str
    secret: bytes
    tracker: LinkTracker | None = None
    """Adds the open pixel and click redirects; None when the campaign is not tracked."""
    signer: DkimSigner | None = None
    """Signs the exact bytes sent; None when DKIM is not configured."""
    subject_prefix: str = ""
    """Put before every subject (a test send's ``[Test]`` mark)."""
    render_cpu_limit_s: float | None = None
    """Render in a child process with this much CPU time (``isolated_render``): for renders a
    person asks for (preview, test send, the check before scheduling), where a costly template
    must not hold up the process. None renders in this process, as delivery does."""
    one_to_one: OneToOneParts = OneToOneParts()

    def unsubscribe_url(self, job_id: int) -> str:
        return unsubscribe_url(self.base_url, self.secret, job_id)

    def render(
        self, *, email: str, fields: Mapping[str, Any], unsubscribe_url: str
    ) -> RenderedMessage:
        """The template for one recipient, before tracking: TemplateError when it cannot be."""
        context = render_context(
            campaign_name=self.campaign_name,
            email=email,
            fields=fields,
            unsubscribe_url=unsubscribe_url,
        )
        if self.render_cpu_limit_s is None:
            rendered = self.template.render(context)
        else:
            rendered = render_isolated(self.template, context, cpu_limit_s=self.render_cpu_limit_s)
        if self.subject_prefix:
            rendered = dataclasses.replace(rendered, subject=self.subject_prefix + rendered.subject)
        return rendered

    async def message_for(self, *, job_id: int, email: str, fields: Mapping[str, Any]) -> bytes:
        """The signed message bytes for job ``job_id``; its new links are in the database on
        return. EdmError (a TemplateError above all) when this recipient's data cannot be used."""
        link = self.unsubscribe_url(job_id)
        rendered = self.render(email=email, fields=fields, unsubscribe_url=link)
        if self.tracker is not None:
            rendered = await self.tracker.apply(rendered, job_id=job_id)
        return self.build(job_id=job_id, email=email, rendered=rendered, unsubscribe_url=link)

    def build(
        self, *, job_id: int, email: str, rendered: RenderedMessage, unsubscribe_url: str
    ) -> bytes:
        """The message bytes of a rendered (and tracked) message, signed."""
        parts = self.one_to_one
        message = self.skeleton.build(
            job_id=job_id,
            to_address=email,
            rendered=rendered,
            unsubscribe_url=unsubscribe_url,
            to_name=parts.to_name,
            extra_headers=parts.extra_headers,
            reply_to=parts.reply_to,
            list_unsubscribe=parts.list_unsubscribe,
            attachments=parts.attachments,
        )
        return message if self.signer is None else self.signer.sign(message)
