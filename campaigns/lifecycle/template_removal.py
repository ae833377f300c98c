"""Housekeeping of the templates folder: rename and delete a template.

A campaign keeps a copy of its template, so removing the folder changes nothing already made;
still, a template a campaign is about to send or sending is left alone, so what a person sees
in the folder matches what goes out.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from campaigns.content.templating import HTML_FILE, checked_name
from campaigns.core.errors import InputError, NotFound, StateError
from campaigns.core.models import Campaign, CampaignState
from campaigns.core.storage import Database

SENDING_STATES = (CampaignState.SCHEDULED, CampaignState.RUNNING, CampaignState.PAUSED)


def delete_template(database: Database, templates_dir: Path, name: str) -> None:
    folder = _template_folder(templates_dir, name)
    _refuse_while_sending(database, name, "delete")
    shutil.rmtree(folder)


def rename_template(database: Database, templates_dir: Path, name: str, new_name: str) -> None:
    folder = _template_folder(templates_dir, name)
    target = templates_dir / checked_name(new_name.strip())
    if target.exists():
        raise InputError(f"name: a template named {target.name!r} exists already")
    _refuse_while_sending(database, name, "rename")
    folder.rename(target)


def _template_folder(templates_dir: Path, name: str) -> Path:
    folder = templates_dir / checked_name(name)
    if not (folder / HTML_FILE).is_file():
        raise NotFound(f"template {name!r} not found in {templates_dir}")
    return folder


def _refuse_while_sending(database: Database, name: str, verb: str) -> None:
    with database.session() as session:
        campaign = session.execute(
            select(Campaign.id, Campaign.state)
            .where(Campaign.template_name == name, Campaign.state.in_(SENDING_STATES))
            .order_by(Campaign.id)
            .limit(1)
        ).first()
    if campaign is not None:
        raise StateError(
            f"template {name!r}: campaign {campaign.id} is {campaign.state} with it; "
            f"cannot {verb} it until that campaign ends"
        )
