"""JSON API for email templates: list, read, save, preview, check against a list, send a test."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from campaigns.content.templating import TemplateSource
from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle.template_removal import delete_template, rename_template
from dashboard.auth import RequireEditor, RequireViewer
from dashboard.dependencies import MAX_ID, DatabaseDep, SettingsDep, Text
from dashboard.list_queries import first_recipient, recipient_fields
from dashboard.sender_domains import check_test_sender
from dashboard.template_files import (
    TemplateSummary,
    checked_name,
    read_template,
    save_template,
    summaries,
)
from dashboard.template_preview import (
    ListCheck,
    SendTestOutcome,
    check_against_list,
    render_for,
    send_test,
)

router = APIRouter(prefix="/api/templates", tags=["templates"], dependencies=[RequireViewer])
TemplateName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
MAX_PART_CHARS = 1_000_000


class TemplateBody(BaseModel):
    subject: Text = Field(max_length=2000)
    html: Text = Field(max_length=MAX_PART_CHARS)
    text: Text | None = Field(None, max_length=MAX_PART_CHARS, description="null: derived")


class TemplateOut(TemplateBody):
    name: str


class PreviewRequest(BaseModel):
    template: Text | None = Field(None, max_length=64, description="a saved template, or:")
    source: TemplateBody | None = Field(None, description="unsaved parts to preview")
    list_id: int | None = Field(None, ge=1, le=MAX_ID)
    recipient_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="default: the list's first recipient"
    )
    fields: dict[Text, Text] | None = Field(
        None, description="merge fields to use instead of a recipient's"
    )


class PreviewOut(BaseModel):
    email: str
    subject: str
    html: str
    text: str


class CheckRequest(BaseModel):
    template: Text | None = Field(None, max_length=64)
    source: TemplateBody | None = None
    list_id: int = Field(ge=1, le=MAX_ID)


class CheckOut(BaseModel):
    list_id: int
    recipients: int
    ok: bool
    missing: dict[str, int]


class SendTestRequest(PreviewRequest):
    to: Text = Field(min_length=3, max_length=320, description="where the test goes")
    from_address: Text = Field(min_length=3, max_length=400)


def _source(settings: Settings, template: str | None, body: TemplateBody | None) -> TemplateSource:
    if body is not None:
        return TemplateSource(
            name=checked_name(template) if template else "unsaved",
            subject=body.subject,
            html=body.html,
            text=body.text,
        )
    if not template:
        raise InputError("template: name a saved template or give its source")
    return read_template(settings.resolved_templates_dir, template)


def _recipient(database: Database, request: PreviewRequest) -> tuple[str, dict[str, str]]:
    if request.fields is not None:
        fields = dict(request.fields)
        return fields.get("email", "preview@example.com"), fields
    recipient_id = request.recipient_id
    if recipient_id is None and request.list_id is not None:
        recipient_id = first_recipient(database, request.list_id)
        if recipient_id is None:
            raise InputError(f"list {request.list_id} has no recipients to preview with")
    if recipient_id is None:
        raise InputError("list_id or recipient_id: choose who to preview the template for")
    email, fields, list_id = recipient_fields(database, recipient_id)
    if request.list_id is not None and list_id != request.list_id:
        raise InputError(f"recipient {recipient_id} is not in list {request.list_id}")
    return email, fields


@router.get("", summary="Templates in EDM_TEMPLATES_DIR")
def get_templates(settings: SettingsDep) -> list[TemplateSummary]:
    return summaries(settings.resolved_templates_dir)


@router.get("/{name}", summary="A template's parts")
def get_template(name: TemplateName, settings: SettingsDep) -> TemplateOut:
    source = read_template(settings.resolved_templates_dir, name)
    return TemplateOut(name=source.name, subject=source.subject, html=source.html, text=source.text)


@router.put(
    "/{name}",
    summary="Save a template (compiled first: a broken one is not written)",
    dependencies=[RequireEditor],
)
def put_template(name: TemplateName, body: TemplateBody, settings: SettingsDep) -> TemplateOut:
    source = save_template(
        settings.resolved_templates_dir,
        TemplateSource(name=name, subject=body.subject, html=body.html, text=body.text),
    )
    return TemplateOut(name=source.name, subject=source.subject, html=source.html, text=source.text)


# Preview and check change nothing: a viewer's template page uses them too.
@router.post("/preview", summary="Render a template for one recipient")
def post_preview(
    request: PreviewRequest, database: DatabaseDep, settings: SettingsDep
) -> PreviewOut:
    source = _source(settings, request.template, request.source)
    email, fields = _recipient(database, request)
    rendered = render_for(
        source, email=email, fields=fields, cpu_limit_s=settings.template_render_cpu_s
    )
    return PreviewOut(email=email, subject=rendered.subject, html=rendered.html, text=rendered.text)


@router.post(
    "/check",
    summary="Check every variable against every recipient of a list",
)
def post_check(request: CheckRequest, database: DatabaseDep, settings: SettingsDep) -> CheckOut:
    result: ListCheck = check_against_list(
        database, _source(settings, request.template, request.source), request.list_id
    )
    return CheckOut(
        list_id=result.list_id, recipients=result.recipients, ok=result.ok, missing=result.missing
    )


@router.post(
    "/test-send", summary="Send the rendered template to one address", dependencies=[RequireEditor]
)
async def post_test_send(
    request: SendTestRequest, database: DatabaseDep, settings: SettingsDep
) -> SendTestOutcome:
    check_test_sender(settings, request.from_address, field="from_address")
    source = _source(settings, request.template, request.source)
    email, fields = await run_in_threadpool(_recipient, database, request)
    return await send_test(
        settings,
        source,
        email=email,
        fields=fields,
        from_address=request.from_address,
        to_address=request.to,
    )


class RenameRequest(BaseModel):
    name: Text = Field(min_length=1, max_length=64, description="the new name")


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a template (refused while a campaign sends with it)",
    dependencies=[RequireEditor],
)
def delete_template_route(
    name: TemplateName, database: DatabaseDep, settings: SettingsDep
) -> Response:
    delete_template(database, settings.resolved_templates_dir, name)
    return Response(status_code=204)


@router.post(
    "/{name}/rename",
    summary="Give a template a new name (campaigns keep their own copy)",
    dependencies=[RequireEditor],
)
def post_rename(
    name: TemplateName, body: RenameRequest, database: DatabaseDep, settings: SettingsDep
) -> TemplateOut:
    rename_template(database, settings.resolved_templates_dir, name, body.name)
    return get_template(body.name.strip(), settings)
