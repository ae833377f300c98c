"""``edm bounces``: receiving bounces and complaints by SMTP or from a mailbox."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from campaigns.bounces.intake import BounceIntake
from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from edm.command_helpers import database
from workers.receivers.bounce_mailbox import parse_mailbox_url, poll_mailbox, run_poller
from workers.receivers.bounce_server import run_bounce_server


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


def poll(args: argparse.Namespace, settings: Settings) -> None:
    mailbox = parse_mailbox_url(args.url)
    if args.every <= 0:
        raise InputError("--every: must be more than 0 seconds")
    intake = _bounce_intake(settings)
    if args.once:
        print(f"{mailbox.redacted()}: {poll_mailbox(mailbox, intake).describe()}")
        return
    run_poller(mailbox, intake, interval_s=args.every)
