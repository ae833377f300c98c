"""``edm send``: one transactional message, through the same function as ``POST /api/tx``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.transactional.requests import MessageRequest
from campaigns.transactional.submission import submit_message
from edm.command_helpers import database, print_json
from workers.transactional_lane import publish_or_leave

CLI_SCOPE = "cli"
"""Idempotency keys given to ``edm send`` are kept apart from every API user's."""


def send(args: argparse.Namespace, settings: Settings) -> None:
    request = MessageRequest(
        to=args.to,
        template=args.template,
        subject=args.subject,
        html=_read(args.html_file, "--html-file"),
        text=_read(args.text_file, "--text-file"),
        data=_data(args.data),
        from_address=args.from_address,
        idempotency_key=args.idempotency_key,
    )
    accepted = submit_message(
        database(settings),
        request,
        settings=settings,
        idempotency_scope=CLI_SCOPE,
        publish=lambda job_ids: publish_or_leave(settings, job_ids),
    )
    if args.json:
        print_json({"id": accepted.message_id, "duplicate": accepted.duplicate})
        return
    print(accepted.message_id)


def _read(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{option} {path}: {error}") from None


def _data(text: str | None) -> dict[str, object]:
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"--data: not JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(data, dict):
        raise InputError('--data: a JSON object of merge fields, like \'{"code": "123456"}\'')
    return data
