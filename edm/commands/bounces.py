"""``edm bounces``: receiving bounces and complaints by SMTP or from a mailbox."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from campaigns.bounces.intake import BounceIntake
from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from edm.command_helpers import database
from workers.receivers.bounce_mailbox import parse_mailbox_url, poll_mailbox, run_poller
from workers.receivers.bounce_server import run_bounce_server

URL_IN_ARGV_WARNING = (
    "warning: --url puts the mailbox password in the command line, which every user of this "
    "machine can read in ps; use --url-file PATH or EDM_BOUNCE_MAILBOX_URL"
)


def _bounce_intake(settings: Settings) -> Any:
    intake_database = database(settings)
    # After the migrations, whose INFO lines are of no interest here.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Its detectors log every step at INFO.
    logging.getLogger("flufl.bounce").setLevel(logging.WARNING)
    return BounceIntake.from_settings(settings, intake_database)


def serve(args: argparse.Namespace, settings: Settings) -> None:
    if not 0 <= args.port < 65536:
        raise InputError(f"--port: {args.port} is not a TCP port")
    intake = _bounce_intake(settings)
    try:
        run_bounce_server(settings, intake, host=args.host, port=args.port)
    except OSError as error:
        raise InputError(
            f"--host/--port: cannot listen on {args.host}:{args.port}: {error.strerror or error}"
        ) from None


def mailbox_url(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The mailbox URL and where it came from: ``--url-file``, else ``--url`` (with a warning),
    else ``EDM_BOUNCE_MAILBOX_URL``."""
    if args.url_file is not None:
        source = f"--url-file {args.url_file}"
        try:
            url = args.url_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise InputError(f"{source}: cannot read: {reason}") from None
        if not url:
            raise InputError(f"{source}: the file is empty")
        return url, source
    if args.url:
        print(URL_IN_ARGV_WARNING, file=sys.stderr, flush=True)
        return args.url, "--url"
    if settings.bounce_mailbox_url:
        return settings.bounce_mailbox_url, "EDM_BOUNCE_MAILBOX_URL"
    raise InputError("edm bounces poll: no mailbox: set EDM_BOUNCE_MAILBOX_URL or pass --url-file")


def poll(args: argparse.Namespace, settings: Settings) -> None:
    url, source = mailbox_url(args, settings)
    mailbox = parse_mailbox_url(url, source=source)
    if args.every <= 0:
        raise InputError("--every: must be more than 0 seconds")
    intake = _bounce_intake(settings)
    if args.once:
        print(f"{mailbox.redacted()}: {poll_mailbox(mailbox, intake).describe()}")
        return
    run_poller(mailbox, intake, interval_s=args.every)
