"""Template pages: the list, a new template, and the editor with its live preview.

The editor saves, previews, checks and sends tests through the JSON API (``/api/templates``)
from a small script, so what it shows is exactly what the API answers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.content.templating import TemplateSource
from campaigns.core.errors import EdmError
from campaigns.lifecycle.template_removal import delete_template, rename_template
from dashboard.auth import RequireEditor, RequireViewer
from dashboard.dependencies import DatabaseDep, SettingsDep, Text
from dashboard.http_errors import status_of
from dashboard.list_queries import list_summaries
from dashboard.page_rendering import render
from dashboard.template_files import read_template, save_template, summaries, template_names

router = APIRouter(include_in_schema=False, dependencies=[RequireViewer])
TemplateName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]

STARTER = TemplateSource(
    name="starter",
    subject="News for {{ first_name }}",
    html=(
        "<!DOCTYPE html>\n<html>\n<body>\n<h1>Hello {{ first_name }},</h1>\n"
        "<p>Write your message here.</p>\n"
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>\n</body>\n</html>\n'
    ),
    text=None,
)


def _templates_page(
    request: Request, settings: SettingsDep, *, error: str | None = None, status: int = 200
) -> Response:
    return render(
        request,
        "templates.html",
        {
            "section": "Templates",
            "templates": summaries(settings.resolved_templates_dir),
            "folder": settings.resolved_templates_dir,
            "error": error,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
        status_code=status,
    )


@router.get("/templates")
def templates_page(request: Request, settings: SettingsDep) -> Response:
    return _templates_page(request, settings)


@router.post("/templates/new", dependencies=[RequireEditor])
def new_template(
    request: Request,
    settings: SettingsDep,
    name: Annotated[Text, Form(max_length=64)] = "",
    copy_of: Annotated[Text, Form(max_length=64)] = "",
) -> Response:
    try:
        if name in template_names(settings.resolved_templates_dir):
            raise EdmError(f"a template named {name!r} exists already: open it to edit it")
        start = read_template(settings.resolved_templates_dir, copy_of) if copy_of else STARTER
        save_template(
            settings.resolved_templates_dir,
            TemplateSource(name=name, subject=start.subject, html=start.html, text=start.text),
        )
    except EdmError as error:
        return _templates_page(request, settings, error=str(error), status=status_of(error))
    return RedirectResponse(f"/templates/{name}", status_code=303)


@router.get("/templates/{name}")
def template_page(
    request: Request, name: TemplateName, database: DatabaseDep, settings: SettingsDep
) -> Response:
    return _template_page(request, name, database, settings)


def _template_page(
    request: Request,
    name: str,
    database: DatabaseDep,
    settings: SettingsDep,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    source = read_template(settings.resolved_templates_dir, name)
    return render(
        request,
        "template_edit.html",
        {
            "section": "Templates",
            "source": source,
            "lists": list_summaries(database),
            "error": error,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
        status_code=status,
    )


NOTICES = {
    "renamed": "Renamed. Campaigns made with it keep their own copy under the old name.",
    "deleted": "Template deleted. Campaigns made with it keep their own copy.",
}


@router.post("/templates/{name}/delete", dependencies=[RequireEditor])
def delete_template_form(
    request: Request, name: TemplateName, database: DatabaseDep, settings: SettingsDep
) -> Response:
    try:
        delete_template(database, settings.resolved_templates_dir, name)
    except EdmError as error:
        return _template_page(
            request, name, database, settings, error=str(error), status=status_of(error)
        )
    return RedirectResponse("/templates?notice=deleted", status_code=303)


@router.post("/templates/{name}/rename", dependencies=[RequireEditor])
def rename_template_form(
    request: Request,
    name: TemplateName,
    database: DatabaseDep,
    settings: SettingsDep,
    new_name: Annotated[Text, Form(max_length=64)] = "",
) -> Response:
    try:
        rename_template(database, settings.resolved_templates_dir, name, new_name)
    except EdmError as error:
        return _template_page(
            request, name, database, settings, error=str(error), status=status_of(error)
        )
    return RedirectResponse(f"/templates/{new_name.strip()}?notice=renamed", status_code=303)
