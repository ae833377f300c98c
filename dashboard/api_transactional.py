"""JSON API for one-to-one mail: ``POST /api/tx`` records and publishes a message at once,
``GET /api/tx/{id}`` says what became of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from campaigns.lists.suppression import TRANSACTIONAL_CATEGORY
from campaigns.transactional.requests import AttachmentInput, MessageRequest
from campaigns.transactional.status import message_status
from campaigns.transactional.submission import submit_message
from dashboard.auth import CurrentUser, RequireEditor, RequireViewer
from dashboard.dependencies import DatabaseDep, SettingsDep, Text
from workers.transactional_lane import publish_or_leave

router = APIRouter(prefix="/api/tx", tags=["transactional"], dependencies=[RequireViewer])
MessageId = Annotated[str, Path(min_length=36, max_length=36, description="the message id")]


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Text = Field(min_length=3, max_length=320)
    name: Text | None = Field(None, max_length=200)


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: Text = Field(min_length=1, max_length=200)
    content_type: Text = Field("application/octet-stream", max_length=130)
    content: str = Field(description="the file, base64")


class TransactionalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: Recipient
    template: Text | None = Field(None, max_length=64, description="a template name")
    subject: Text | None = Field(None, max_length=2000, description="Jinja, with `data`")
    html: Text | None = Field(None, max_length=1_000_000, description="Jinja, with `data`")
    text: Text | None = Field(None, max_length=1_000_000, description="Jinja, with `data`")
    data: dict[str, Any] = Field({}, description="merge fields, 64 KiB at most as JSON")
    from_address: Text | None = Field(None, alias="from", max_length=400)
    reply_to: Text | None = Field(None, max_length=400)
    headers: dict[str, str] = Field(
        {}, description="X-* and a few others (In-Reply-To, References, Auto-Submitted...)"
    )
    tags: list[str] = Field([], max_length=10)
    category: Text = Field(TRANSACTIONAL_CATEGORY, max_length=32)
    track: bool = Field(False, description="open pixel and click redirects")
    attachments: list[AttachmentIn] = Field([], max_length=20)


class AcceptedOut(BaseModel):
    id: str
    duplicate: bool
    """The Idempotency-Key was used within a day: the first message's id, nothing new."""


class EventOut(BaseModel):
    kind: str
    occurred_at: datetime
    detail: dict[str, Any]


class LastReply(BaseModel):
    code: int | None
    status: str | None
    text: str | None


class MessageOut(BaseModel):
    id: str
    to: str
    category: str
    tags: list[str]
    state: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_reply: LastReply
    events: list[EventOut]


@router.post(
    "",
    status_code=202,
    summary="Send one message",
    description=(
        "Recorded durably, then published at once on the transactional queue. Same templates, "
        "rendering, DKIM, VERP return path, relays and limits as campaigns. An address "
        "suppressed for a hard bounce, complaint or by hand answers 409; a marketing "
        "unsubscribe does not stop the `transactional` category. The same `Idempotency-Key` "
        "within 24 hours answers the first message's id and sends nothing more; the same key "
        "with a different request answers 422 naming `Idempotency-Key` and records nothing."
    ),
    responses={
        409: {"description": "the address is suppressed"},
        422: {"description": "a malformed field, or an Idempotency-Key used for another request"},
    },
    dependencies=[RequireEditor],
)
def post_message(
    body: TransactionalIn,
    user: CurrentUser,
    database: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    request = MessageRequest(
        to=body.to.email,
        to_name=body.to.name,
        template=body.template,
        subject=body.subject,
        html=body.html,
        text=body.text,
        data=body.data,
        from_address=body.from_address,
        reply_to=body.reply_to,
        headers=body.headers,
        tags=body.tags,
        category=body.category,
        track=body.track,
        attachments=[
            AttachmentInput(a.filename, a.content, a.content_type) for a in body.attachments
        ],
        idempotency_key=idempotency_key,
    )
    accepted = submit_message(
        database,
        request,
        settings=settings,
        idempotency_scope=f"user:{user.user.id}",
        publish=lambda job_ids: publish_or_leave(settings, job_ids),
    )
    out = AcceptedOut(id=accepted.message_id, duplicate=accepted.duplicate)
    return JSONResponse(out.model_dump(), status_code=202)


@router.get("/{message_id}", summary="What became of one message")
def get_message(message_id: MessageId, database: DatabaseDep) -> MessageOut:
    status = message_status(database, message_id)
    return MessageOut(
        id=status.id,
        to=status.to,
        category=status.category,
        tags=status.tags,
        state=status.state,
        attempts=status.attempts,
        created_at=status.created_at,
        sent_at=status.sent_at,
        last_reply=LastReply(
            code=status.last_code, status=status.last_status, text=status.last_reply
        ),
        events=[
            EventOut(kind=event.kind, occurred_at=event.occurred_at, detail=event.detail)
            for event in status.events
        ],
    )
