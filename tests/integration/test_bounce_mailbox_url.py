"""Where ``edm bounces poll`` finds its mailbox URL: a file or the environment, so the password
stays out of ``ps``; ``--url`` still works, with a warning. Polled for real against Dovecot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from edm.cli import build_parser
from edm.commands.bounces import URL_IN_ARGV_WARNING, mailbox_url
from tests.dovecot_server import DovecotServer
from workers.receivers.bounce_mailbox import parse_mailbox_url

FROM_FILE = "imaps://file:pw1@mail.example/INBOX"
FROM_ENVIRONMENT = "imaps://env:pw2@mail.example/INBOX"
FROM_ARGV = "imaps://argv:pw3@mail.example/INBOX"


def _found(argv: list[str], settings: Settings) -> tuple[str, str]:
    return mailbox_url(build_parser().parse_args(["bounces", "poll", *argv]), settings)


def test_the_url_file_wins_over_the_environment(tmp_path: Path) -> None:
    url_file = tmp_path / "mailbox-url"
    url_file.write_text(FROM_FILE + "\n")
    settings = Settings.from_env({"EDM_BOUNCE_MAILBOX_URL": FROM_ENVIRONMENT})
    assert _found(["--url-file", str(url_file)], settings) == (FROM_FILE, f"--url-file {url_file}")
    assert _found([], settings) == (FROM_ENVIRONMENT, "EDM_BOUNCE_MAILBOX_URL")


def test_url_in_argv_still_works_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env({"EDM_BOUNCE_MAILBOX_URL": FROM_ENVIRONMENT})
    assert _found(["--url", FROM_ARGV], settings) == (FROM_ARGV, "--url")
    assert capsys.readouterr().err.strip() == URL_IN_ARGV_WARNING


def test_url_and_url_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["bounces", "poll", "--url", FROM_ARGV, "--url-file", str(tmp_path / "f")]
        )


def test_a_missing_empty_or_absent_url_says_where_to_put_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="EDM_BOUNCE_MAILBOX_URL or pass --url-file"):
        _found([], Settings.from_env({}))
    with pytest.raises(InputError, match=r"--url-file .*missing: cannot read"):
        _found(["--url-file", str(tmp_path / "missing")], Settings.from_env({}))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InputError, match="the file is empty"):
        _found(["--url-file", str(tmp_path / "empty")], Settings.from_env({}))


def test_a_bad_url_is_refused_naming_its_source_and_never_its_password() -> None:
    with pytest.raises(InputError) as refused:
        parse_mailbox_url("ftp://user:hunter2@host", source="EDM_BOUNCE_MAILBOX_URL")
    assert str(refused.value).startswith("EDM_BOUNCE_MAILBOX_URL: expected imap://")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("where", ["url-file", "environment"])
def test_edm_bounces_poll_reads_the_mailbox_named_by_a_file_or_the_environment(
    database_url: str, dovecot: DovecotServer, tmp_path: Path, where: str
) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY="test-secret",
    )
    argv = [sys.executable, "-m", "edm", "bounces", "poll", "--once"]
    if where == "url-file":
        url_file = tmp_path / "mailbox-url"
        url_file.write_text(dovecot.imap_url + "\n")
        argv += ["--url-file", str(url_file)]
    else:
        environment["EDM_BOUNCE_MAILBOX_URL"] = dovecot.imap_url
    result = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "messages read" in result.stdout
    assert URL_IN_ARGV_WARNING not in result.stderr
