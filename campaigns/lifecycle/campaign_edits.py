"""Housekeeping of campaigns: edit a draft, rename, clone, archive, delete.

A campaign that has sent keeps its jobs, events and counters for good: it is archived (hidden
from the default list), never deleted. Only a campaign with no job (a draft, or one cancelled
before it was scheduled) is deleted, and only a draft is edited: once scheduled, the jobs were
checked against the template, list and sender it had then.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from campaigns.content.templating import CompiledTemplate, TemplateSource
from campaigns.core.errors import InputError, StateError
from campaigns.core.models import Campaign, CampaignState, Job, utc_now
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import (
    FINAL_CAMPAIGN_STATES,
    _campaign,
    _list_by_name,
    campaign_template,
    checked_relays,
    checked_sender,
    checked_template,
)

MAX_NAME_CHARS = 200
DELETABLE_STATES = (CampaignState.DRAFT, CampaignState.CANCELLED)


@dataclass(frozen=True)
class DraftChanges:
    """What to change in a draft; None leaves a part as it is.

    A new ``template`` is read from the templates folder again, with its own subject unless
    ``subject`` is given too. ``relays`` empty means every relay.
    """

    name: str | None = None
    list_name: str | None = None
    template: str | None = None
    from_address: str | None = None
    subject: str | None = None
    tracking: bool | None = None
    relays: Sequence[str] | None = None


def checked_campaign_name(name: str, *, field: str = "name") -> str:
    name = name.strip()
    if not name:
        raise InputError(f"{field}: give the campaign a name")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"{field}: at most {MAX_NAME_CHARS} characters")
    return name


def edit_draft(
    database: Database,
    campaign_id: int,
    changes: DraftChanges,
    *,
    templates_dir: Any,
    configured_relays: Collection[str] = (),
) -> Campaign:
    """Apply ``changes`` to a draft, each part checked as ``create_campaign`` checks it."""
    with database.session() as session:
        campaign = _campaign(session, campaign_id, for_update=True)
        if campaign.state != CampaignState.DRAFT:
            raise StateError(
                f"campaign {campaign_id} is {campaign.state}; only a draft is edited "
                "(clone it to make a new draft)"
            )
        if changes.name is not None:
            campaign.name = checked_campaign_name(changes.name)
        if changes.list_name is not None:
            campaign.list_id = _list_by_name(session, changes.list_name).id
        if changes.from_address is not None:
            checked_sender(changes.from_address)
            campaign.from_address = changes.from_address
        if changes.template is not None:
            source = checked_template(changes.template, templates_dir, changes.subject)
            campaign.template_name = source.name
            campaign.subject_template = source.subject
            campaign.html_template = source.html
            campaign.text_template = source.text
        elif changes.subject is not None:
            # Compiled with the stored body first, so a subject that breaks it is never kept.
            stored = campaign_template(campaign)
            CompiledTemplate(TemplateSource(stored.name, changes.subject, stored.html, stored.text))
            campaign.subject_template = changes.subject
        if changes.tracking is not None:
            campaign.tracking = changes.tracking
        if changes.relays is not None:
            campaign.relays = checked_relays(changes.relays, configured_relays)
        session.flush()
        return campaign


def rename_campaign(database: Database, campaign_id: int, name: str) -> Campaign:
    """Any campaign may be renamed: its name is a label, not part of what was sent."""
    with database.session() as session:
        campaign = _campaign(session, campaign_id, for_update=True)
        campaign.name = checked_campaign_name(name)
        return campaign


def clone_campaign(database: Database, campaign_id: int, *, name: str | None = None) -> Campaign:
    """A new draft with the campaign's list, sender, template copy, subject, relays and tracking;
    the original, in whatever state, is left as it is."""
    with database.session() as session:
        original = _campaign(session, campaign_id)
        copy_name = name if name is not None else f"{original.name} (copy)"[:MAX_NAME_CHARS]
        clone = Campaign(
            name=checked_campaign_name(copy_name),
            list_id=original.list_id,
            state=CampaignState.DRAFT,
            from_address=original.from_address,
            template_name=original.template_name,
            subject_template=original.subject_template,
            html_template=original.html_template,
            text_template=original.text_template,
            tracking=original.tracking,
            relays=list(original.relays) if original.relays is not None else None,
        )
        session.add(clone)
        session.flush()
        return clone


def archive_campaign(database: Database, campaign_id: int, *, archived: bool = True) -> Campaign:
    """Hide a finished campaign that has sent from the default list (``archived=False`` shows
    it again); its jobs, events and counters stay."""
    with database.session() as session:
        campaign = _campaign(session, campaign_id, for_update=True)
        if archived:
            if not _has_jobs(session, campaign_id):
                raise StateError(
                    f"campaign {campaign_id} has sent nothing; delete it instead of archiving"
                )
            if campaign.state not in FINAL_CAMPAIGN_STATES:
                raise StateError(
                    f"campaign {campaign_id} is {campaign.state}; cancel it or let it finish "
                    "before archiving"
                )
        campaign.archived_at = utc_now() if archived else None
        return campaign


def delete_campaign(database: Database, campaign_id: int) -> str:
    """Delete a campaign that never had a job; returns its name. One that has sent is archived
    instead, so its history and counters are never lost."""
    with database.session() as session:
        campaign = _campaign(session, campaign_id, for_update=True)
        if campaign.state not in DELETABLE_STATES or _has_jobs(session, campaign_id):
            raise StateError(
                f"campaign {campaign_id} is {campaign.state} and has recipients; "
                "archive it instead (its history stays)"
            )
        name = campaign.name
        session.execute(delete(Campaign).where(Campaign.id == campaign_id))
        return name


def _has_jobs(session: Any, campaign_id: int) -> bool:
    return session.scalar(select(Job.id).where(Job.campaign_id == campaign_id).limit(1)) is not None
