"""The ``edm`` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from campaigns.core.errors import EdmError
from campaigns.core.models import JobState
from campaigns.core.settings import Settings
from campaigns.lists.suppression import SETTABLE_REASONS

EXIT_ERROR = 1


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Runs one command line: ``argv`` (default: the process's), with settings read from
    ``environ`` (default: the process's environment)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(environ)
        _run(args.handler, args, settings)
    except EdmError as error:
        print(f"edm: error: {error}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edm", description="Bulk email campaign sender.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="send a sample campaign to a local capture server")
    demo.add_argument("--keep-running", action="store_true", help=argparse.SUPPRESS)
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep the worker running and serve the dashboard until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=8000, help="dashboard port with --serve (8000)")
    demo.set_defaults(handler="services:demo")

    lists = commands.add_parser("lists", help="recipient lists").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    importing = lists.add_parser("import", help="import a recipient CSV into a list")
    importing.add_argument("path", type=Path)
    importing.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    importing.add_argument("--encoding", help="the CSV's encoding when it is not UTF-8/UTF-16")
    importing.add_argument("--json", action="store_true", help="print the report as JSON")
    importing.set_defaults(handler="lists:import_file")
    _add_list_housekeeping(lists)
    show = lists.add_parser("show", help="one list: size, fields, creation")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler="lists:show")
    export = lists.add_parser("export", help="a list as CSV (email, then its fields)")
    export.add_argument("name", metavar="NAME")
    export.add_argument("--csv", type=Path, metavar="PATH", help="write here, not to stdout")
    export.set_defaults(handler="lists:export")

    campaigns = commands.add_parser("campaigns", help="campaigns").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = campaigns.add_parser("create", help="create a draft campaign")
    create.add_argument("--name", required=True)
    create.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    create.add_argument("--template", required=True, metavar="PATH_OR_NAME")
    create.add_argument("--from", required=True, dest="from_address", metavar="ADDRESS")
    create.add_argument("--subject", help="a Jinja subject that replaces the template's")
    create.add_argument(
        "--no-tracking",
        action="store_true",
        help="no open pixel and no click redirects (the unsubscribe link stays)",
    )
    create.add_argument(
        "--relay",
        action="append",
        default=[],
        dest="relays",
        metavar="NAME",
        help="send only through this configured relay (repeatable; default: every relay)",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler="campaigns:create")

    schedule = campaigns.add_parser("schedule", help="check the template and schedule sending")
    schedule.add_argument("id", type=int)
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--now", action="store_true")
    when.add_argument("--at", metavar="ISO-8601", help="e.g. 2026-12-01T09:00")
    schedule.add_argument("--tz", default="UTC", metavar="ZONE", help="zone of --at (default UTC)")
    plan = schedule.add_mutually_exclusive_group()
    plan.add_argument(
        "--local-time",
        action="store_true",
        help="send at --at on each recipient's own clock (zone from --tz-field, else --tz)",
    )
    plan.add_argument(
        "--spread-hours", type=float, default=0.0, metavar="N", help="release evenly over N hours"
    )
    schedule.add_argument(
        "--tz-field",
        default="timezone",
        metavar="FIELD",
        help="merge field holding each recipient's IANA zone (default: timezone)",
    )
    schedule.set_defaults(handler="campaigns:schedule")

    status = campaigns.add_parser("status", help="state and counts of a campaign")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler="campaigns:status")

    for action, help_text in (
        ("pause", "stop sending within a second; resume continues where it stopped"),
        ("resume", "continue a paused campaign"),
        ("cancel", "cancel every message not yet sent"),
    ):
        sub = campaigns.add_parser(action, help=help_text)
        sub.add_argument("id", type=int)
        sub.set_defaults(handler="campaigns:transition", transition=action)

    failures = campaigns.add_parser(
        "failures", help="every recipient not delivered, with the relay's last reply"
    )
    failures.add_argument("id", type=int)
    failures.add_argument("--csv", action="store_true", help="CSV on stdout, safe for spreadsheets")
    failures.add_argument(
        "--state",
        action="append",
        dest="states",
        choices=[state.value for state in JobState if state != JobState.SENT],
        help="only jobs in this state (repeatable)",
    )
    failures.set_defaults(handler="campaigns:failures")

    retry = campaigns.add_parser(
        "retry", help="send again to recipients whose failure may pass (never hard bounces)"
    )
    retry.add_argument("id", type=int)
    retry.add_argument(
        "--include-unknown",
        action="store_true",
        help="also messages with no reply to the final '.' (the recipient may get them twice)",
    )
    retry.add_argument(
        "--include-policy",
        action="store_true",
        help="also 5.7.x policy refusals, once their cause (DNS, authentication) is fixed",
    )
    retry.set_defaults(handler="campaigns:retry")

    _add_campaign_housekeeping(campaigns)
    _add_template_commands(commands)
    _add_recipient_commands(commands)
    _add_send_command(commands)
    _add_suppression_commands(commands)
    _add_dkim_commands(commands)
    _add_bounce_commands(commands)
    _add_submission_commands(commands)
    _add_webhook_commands(commands)

    worker = commands.add_parser("worker", help="run a delivery worker (and the dispatcher)")
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not run a dispatcher here (one runs elsewhere)",
    )
    worker.set_defaults(handler="worker:worker")

    track = commands.add_parser("track", help="serve the open, click and unsubscribe links")
    track.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    track.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    track.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (1); about one per core",
    )
    track.add_argument(
        "--sync-events",
        action="store_true",
        help="write each open and click before answering it, as without Redis (slower)",
    )
    track.set_defaults(handler="services:track")

    installation = commands.add_parser(
        "status",
        help="database, Redis, workers, dispatcher, queue; exits non-zero on a problem",
    )
    installation.add_argument("--json", action="store_true", help="one JSON object, every field")
    installation.set_defaults(handler="status:run")

    _add_dashboard_commands(commands)
    return parser


def _add_list_housekeeping(lists: Any) -> None:
    listing = lists.add_parser("list", help="every list with its size")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler="lists:list_lists")
    delete = lists.add_parser(
        "delete", help="delete a list with its people and the drafts made on it"
    )
    delete.add_argument("name")
    delete.add_argument(
        "--yes", action="store_true", help="delete (without it: say what would go, delete nothing)"
    )
    delete.set_defaults(handler="lists:delete")
    rename = lists.add_parser("rename", help="give a list a new name")
    rename.add_argument("name")
    rename.add_argument("new_name", metavar="NEW_NAME")
    rename.set_defaults(handler="lists:rename")


def _add_campaign_housekeeping(campaigns: Any) -> None:
    listing = campaigns.add_parser("list", help="campaigns, newest first, with their rates")
    listing.add_argument("--archived", action="store_true", help="the archived ones instead")
    listing.add_argument("--limit", type=int, default=200, metavar="N", help="at most N (200)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler="campaigns:list_campaigns")

    edit = campaigns.add_parser("edit", help="change a draft (what is not given stays)")
    edit.add_argument("id", type=int)
    edit.add_argument("--name")
    edit.add_argument("--list", dest="list_name", metavar="NAME")
    edit.add_argument("--template", metavar="PATH_OR_NAME", help="read again, with its own subject")
    edit.add_argument("--from", dest="from_address", metavar="ADDRESS")
    edit.add_argument("--subject", help="a Jinja subject that replaces the template's")
    tracking = edit.add_mutually_exclusive_group()
    tracking.add_argument("--tracking", action="store_true", default=None)
    tracking.add_argument("--no-tracking", action="store_false", dest="tracking")
    relays = edit.add_mutually_exclusive_group()
    relays.add_argument(
        "--relay", action="append", dest="relays", metavar="NAME", help="only this relay"
    )
    relays.add_argument(
        "--any-relay", action="store_const", const=[], dest="relays", help="every relay"
    )
    edit.set_defaults(handler="campaigns:edit")

    clone = campaigns.add_parser("clone", help="a new draft copied from a campaign")
    clone.add_argument("id", type=int)
    clone.add_argument("--name", help="the new draft's name (default: NAME (copy))")
    clone.set_defaults(handler="campaigns:clone")

    archive = campaigns.add_parser(
        "archive", help="hide a finished campaign from the list; its history stays"
    )
    archive.add_argument("id", type=int)
    archive.add_argument("--undo", action="store_true", help="show it in the list again")
    archive.set_defaults(handler="campaigns:archive")

    delete = campaigns.add_parser(
        "delete", help="delete a draft (one that has sent is archived instead)"
    )
    delete.add_argument("id", type=int)
    delete.set_defaults(handler="campaigns:delete")


def _add_template_commands(commands: Any) -> None:
    templates = commands.add_parser("templates", help="the templates folder").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = templates.add_parser("list", help="every template with its subject")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler="templates:list_templates")
    delete = templates.add_parser(
        "delete", help="delete a template folder (campaigns keep their own copy)"
    )
    delete.add_argument("name")
    delete.set_defaults(handler="templates:delete")
    rename = templates.add_parser("rename", help="give a template a new name")
    rename.add_argument("name")
    rename.add_argument("new_name", metavar="NEW_NAME")
    rename.set_defaults(handler="templates:rename")


def _add_recipient_commands(commands: Any) -> None:
    recipients = commands.add_parser(
        "recipients", help="a person across lists: show, correct, remove, export, erase"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    show = recipients.add_parser("show", help="lists, fields, suppression, messages, events")
    show.add_argument("email", metavar="EMAIL")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler="recipients:show")
    update = recipients.add_parser("update", help="set fields of the person in one list")
    update.add_argument("email", metavar="EMAIL")
    update.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    update.add_argument(
        "--field",
        action="append",
        default=[],
        dest="fields",
        metavar="NAME=VALUE",
        help="repeatable; an empty VALUE clears the field",
    )
    update.set_defaults(handler="recipients:update")
    remove = recipients.add_parser("remove", help="take the person out of one list")
    remove.add_argument("email", metavar="EMAIL")
    remove.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    remove.set_defaults(handler="recipients:remove")
    export = recipients.add_parser("export", help="everything held about the person, as JSON")
    export.add_argument("email", metavar="EMAIL")
    export.add_argument("--out", type=Path, metavar="PATH", help="write here, not to stdout")
    export.set_defaults(handler="recipients:export")
    erase = recipients.add_parser(
        "erase", help="remove the address from everything; only a keyed hash stays suppressed"
    )
    erase.add_argument("email", metavar="EMAIL")
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(handler="recipients:erase")

    maintenance = commands.add_parser("maintenance", help="housekeeping").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    prune = maintenance.add_parser(
        "prune", help="drop events and reply texts older than EDM_EVENT_RETENTION_DAYS"
    )
    prune.add_argument("--json", action="store_true")
    prune.set_defaults(handler="recipients:prune")


def _add_send_command(commands: Any) -> None:
    send = commands.add_parser(
        "send", help="send one transactional message (what POST /api/tx does)"
    )
    send.add_argument("--to", required=True, metavar="ADDRESS")
    content = send.add_mutually_exclusive_group(required=True)
    content.add_argument("--template", metavar="NAME", help="a template name")
    content.add_argument("--subject", metavar="TEXT", help="with --html-file: inline content")
    send.add_argument("--html-file", type=Path, metavar="FILE")
    send.add_argument("--text-file", type=Path, metavar="FILE")
    send.add_argument("--data", metavar="JSON", help="merge fields as a JSON object")
    send.add_argument("--from", dest="from_address", metavar="ADDRESS")
    send.add_argument(
        "--idempotency-key", metavar="KEY", help="the same key within 24 h sends once"
    )
    send.add_argument("--json", action="store_true")
    send.set_defaults(handler="send:send")


def _add_suppression_commands(commands: Any) -> None:

    reasons = [reason.value for reason in SETTABLE_REASONS]
    suppression = commands.add_parser(
        "suppression", help="addresses never mailed again"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    importing = suppression.add_parser("import", help="suppress every address in a CSV")
    importing.add_argument("path", type=Path)
    importing.add_argument(
        "--reason",
        choices=reasons,
        default="manual",
        help="for rows without a reason column (default: manual)",
    )
    importing.add_argument("--encoding", help="the CSV's encoding when it is not UTF-8/UTF-16")
    importing.add_argument("--json", action="store_true", help="print the report as JSON")
    importing.set_defaults(handler="suppression:import_file")

    adding = suppression.add_parser("add", help="suppress one or more addresses")
    adding.add_argument("addresses", nargs="+", metavar="ADDRESS")
    adding.add_argument("--reason", choices=reasons, default="manual")
    adding.add_argument("--detail", help="a note kept with the entry")
    adding.set_defaults(handler="suppression:add")

    export = suppression.add_parser("export", help="the list as CSV, safe for spreadsheets")
    export.add_argument("--csv", type=Path, metavar="PATH", help="write here, not to stdout")
    export.set_defaults(handler="suppression:export")

    remove = suppression.add_parser("remove", help="allow mail to an address again")
    remove.add_argument("address")
    remove.set_defaults(handler="suppression:remove")


def _add_dkim_commands(commands: Any) -> None:
    dkim = commands.add_parser("dkim", help="DKIM signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    keygen = dkim.add_parser("keygen", help="make a signing key and print its DNS record")
    keygen.add_argument("--selector", required=True)
    keygen.add_argument("--domain", required=True, help="the d= domain, usually the From domain")
    keygen.add_argument("--type", choices=["rsa", "ed25519"], default="rsa", dest="key_type")
    keygen.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="private key file (default: DATA_DIR/dkim/SELECTOR._domainkey.DOMAIN.pem)",
    )
    keygen.add_argument("--json", action="store_true")
    keygen.set_defaults(handler="dkim:keygen")


def _add_bounce_commands(commands: Any) -> None:
    bounces = commands.add_parser(
        "bounces", help="receive bounces and complaints after sending"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = bounces.add_parser("serve", help="inbound SMTP server for the bounce domain's MX")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serve.add_argument("--port", type=int, default=25, help="port to listen on (25)")
    serve.set_defaults(handler="bounces:serve")
    poll = bounces.add_parser("poll", help="read bounces from an IMAP or POP3 mailbox")
    where = poll.add_mutually_exclusive_group()
    where.add_argument(
        "--url-file",
        type=Path,
        metavar="PATH",
        help="a file holding the mailbox URL (e.g. a systemd credential); "
        "default: EDM_BOUNCE_MAILBOX_URL",
    )
    where.add_argument(
        "--url",
        help="imaps://user:pass@host:993/INBOX, imap://, pop3://, pop3s:// "
        "(visible to other users in ps: prefer --url-file or EDM_BOUNCE_MAILBOX_URL)",
    )
    when = poll.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one pass, then exit")
    when.add_argument(
        "--every", type=float, default=60.0, metavar="SECONDS", help="seconds between passes (60)"
    )
    poll.set_defaults(handler="bounces:poll")


def _add_submission_commands(commands: Any) -> None:
    submit = commands.add_parser(
        "submit", help="SMTP submission for applications (transactional mail)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = submit.add_parser("serve", help="SMTP submission server (AUTH, STARTTLS)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serve.add_argument("--port", type=int, default=587, help="port to listen on (587)")
    serve.add_argument(
        "--implicit-tls-port",
        type=int,
        metavar="PORT",
        help="also listen with TLS from the first byte (465 by custom); needs the certificate",
    )
    serve.set_defaults(handler="submit:serve")


def _add_dashboard_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve the dashboard, its JSON API, /metrics and the tracking links"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.set_defaults(handler="services:serve")

    _add_user_commands(commands)


def _add_user_commands(commands: Any) -> None:
    users = commands.add_parser("users", help="dashboard accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = users.add_parser("create", help="make an account that can sign in")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--role",
        metavar="ROLE",
        help="admin, editor or viewer (the first account is an admin unless told otherwise)",
    )
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else it is asked for)",
    )
    create.set_defaults(handler="users:create")

    listing = users.add_parser("list", help="every account with its role")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler="users:list_users")

    delete = users.add_parser("delete", help="delete an account, its sessions and its tokens")
    delete.add_argument("--email", required=True)
    delete.set_defaults(handler="users:delete")

    role = users.add_parser("role", help="change an account's role")
    role.add_argument("--email", required=True)
    role.add_argument("--role", required=True, metavar="ROLE", help="admin, editor or viewer")
    role.set_defaults(handler="users:role")

    password = users.add_parser(
        "password", help="set a new password (signs out every browser, revokes API tokens)"
    )
    password.add_argument("--email", required=True)
    password.add_argument("--password-stdin", action="store_true")
    password.add_argument(
        "--keep-tokens", action="store_true", help="leave the account's API tokens working"
    )
    password.set_defaults(handler="users:password")

    token = users.add_parser("token", help="print a new API token once (Authorization: Bearer)")
    token.add_argument("--email", required=True)
    token.add_argument("--name", default="", help="what the token is for, shown in lists")
    token.add_argument(
        "--expires-days", type=float, metavar="DAYS", help="stops working after this many days"
    )
    token.set_defaults(handler="users:token")

    tokens = users.add_parser("tokens", help="an account's API tokens").add_subparsers(
        dest="tokens_action", required=True, metavar="ACTION"
    )
    token_list = tokens.add_parser("list", help="id, name, created, last used, expires")
    token_list.add_argument("--email", required=True)
    token_list.add_argument("--json", action="store_true")
    token_list.set_defaults(handler="users:list_tokens")
    revoke = tokens.add_parser("revoke", help="stop a token from working")
    revoke.add_argument("id", type=int, metavar="ID")
    revoke.set_defaults(handler="users:revoke_token")

    credentials = users.add_parser(
        "smtp-credentials", help="logins of applications for `edm submit serve`"
    ).add_subparsers(dest="credentials_action", required=True, metavar="ACTION")
    credential = credentials.add_parser("create", help="print a new login's password once")
    credential.add_argument("--email", required=True, help="the login name")
    credential.add_argument(
        "--allowed-domains",
        default="",
        metavar="D1,D2",
        help="sender domains it may use (default: the login's own domain)",
    )
    credential.add_argument("--rate", metavar="N/min", help="recipients a minute, at most")
    credential.set_defaults(handler="smtp_credentials:create")
    credential_list = credentials.add_parser("list", help="id, login, domains, rate, state")
    credential_list.add_argument("--json", action="store_true")
    credential_list.set_defaults(handler="smtp_credentials:list_credentials")
    credential_revoke = credentials.add_parser("revoke", help="stop a login from working")
    credential_revoke.add_argument("id", type=int, metavar="ID")
    credential_revoke.set_defaults(handler="smtp_credentials:revoke")


def _add_webhook_commands(commands: Any) -> None:
    webhooks = commands.add_parser(
        "webhooks", help="endpoints that delivery events are POSTed to"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    adding = webhooks.add_parser("add", help="subscribe a URL; prints its secret once")
    adding.add_argument("url", metavar="URL")
    adding.add_argument(
        "--events",
        required=True,
        metavar="E1,E2",
        help="some of sent,deferred,bounced,complained,opened,clicked,unsubscribed",
    )
    scope = adding.add_mutually_exclusive_group()
    scope.add_argument("--campaign", type=int, metavar="ID", help="only this campaign's events")
    scope.add_argument("--category", metavar="C", help="only this transactional category's")
    adding.add_argument("--json", action="store_true")
    adding.set_defaults(handler="webhooks:add")
    listing = webhooks.add_parser("list", help="endpoints, their state and waiting events")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler="webhooks:list_command")
    for action, help_text in (
        ("remove", "delete an endpoint and its undelivered events"),
        ("test", "POST a signed test event now; prints the status and response time"),
        ("resume", "deliver a paused endpoint's events again"),
    ):
        sub = webhooks.add_parser(action, help=help_text)
        sub.add_argument("id", type=int, metavar="ID")
        sub.set_defaults(handler=f"webhooks:{action}")


def _run(handler: str, args: argparse.Namespace, settings: Settings) -> None:
    """Each group's module is imported only when one of its commands runs, so ``edm --help`` and
    quick commands do not load pandas, Celery and FastAPI (about 2.5 s together)."""
    module_name, _, function_name = handler.partition(":")
    module = importlib.import_module(f"edm.commands.{module_name}")
    getattr(module, function_name)(args, settings)


if __name__ == "__main__":
    main()
