"""Bad input: one line on stderr, a non-zero exit, and nothing written."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaigns.core.models import Campaign, Recipient, RecipientList
from campaigns.core.storage import open_database
from tests.conftest import run_edm

GOOD_CSV = (
    "Email,First Name,City,Plan\nana@example.com,Ana,Lisbon,pro\nbo@example.com,Bo,Oslo,free\n"
)


@pytest.fixture
def env(edm_env: dict[str, str]) -> dict[str, str]:
    return edm_env


def _assert_one_line_error(result: object, *needles: str) -> None:
    assert result.returncode != 0  # type: ignore[attr-defined]
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("edm: error: ")
    for needle in needles:
        assert needle in stderr, stderr


def _counts(env: dict[str, str]) -> tuple[int, int, int]:
    database = open_database(env["EDM_DATABASE_URL"])
    with database.session() as session:
        counts = tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (RecipientList, Recipient, Campaign)
        )
    database.dispose()
    return counts  # type: ignore[return-value]


def _import(env: dict[str, str], path: Path, *extra: str) -> object:
    return run_edm(["lists", "import", str(path), "--list", "people", *extra], env)


def _create(env: dict[str, str], template: Path, *extra: str) -> object:
    return run_edm(
        ["campaigns", "create", "--name", "x", "--list", "people", "--template", str(template),
         "--from", "news@example.com", *extra],
        env,
    )  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.csv", None, "missing.csv"),
        ("no-email.csv", b"name,city\nAna,Lisbon\n", "email"),
        ("empty.csv", b"", "empty.csv"),
        ("binary.csv", bytes(range(256)) * 8, "binary.csv"),
        ("latin1.csv", "email,name\nj@example.com,Jos\xe9\n".encode("latin-1"), "--encoding"),
    ],
)
def test_unreadable_csv_is_one_line_error_and_imports_nothing(
    env: dict[str, str], tmp_path: Path, name: str, content: bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    _assert_one_line_error(_import(env, path), needle)
    assert _counts(env) == (0, 0, 0)


def test_a_template_with_a_syntax_error_is_refused_at_create(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "list.csv").write_text(GOOD_CSV)
    assert _import(env, tmp_path / "list.csv").returncode == 0  # type: ignore[attr-defined]
    template = tmp_path / "broken"
    template.mkdir()
    (template / "subject.txt").write_text("Hello")
    (template / "body.html").write_text("<p>line one</p>\n<p>{% if first_name %}oops</p>\n")
    _assert_one_line_error(_create(env, template), "body.html")
    assert _counts(env)[2] == 0


def test_an_undefined_variable_is_refused_at_schedule_naming_it_and_the_count(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "list.csv").write_text(GOOD_CSV)
    _import(env, tmp_path / "list.csv")
    template = tmp_path / "needs-coupon"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ first_name }}")
    (template / "body.html").write_text("<p>Your code: {{ coupon_code }}</p>")
    created = _create(env, template, "--json")
    campaign_id = json.loads(created.stdout)["id"]
    result = run_edm(["campaigns", "schedule", str(campaign_id), "--now"], env)
    _assert_one_line_error(result, "coupon_code", "2 of 2", f"campaign {campaign_id}")
    status = json.loads(run_edm(["campaigns", "status", str(campaign_id), "--json"], env).stdout)
    assert status["state"] == "draft"
    assert status["total"] == 0


@pytest.mark.parametrize(
    ("costly", "limit"),
    [
        ("{{ 10 ** (10 ** 10) }}", "body.html:2: exponent too large (limit 10000)"),
        (
            "{% set s = 'x' * 1000 %}{% for a in s %}{% for b in s %}{% for c in s %}"
            "{% endfor %}{% endfor %}{% endfor %}",
            "body.html:2: rendering took too long (limit 1 s of CPU)",
        ),
    ],
)
def test_a_costly_template_is_refused_at_schedule_naming_the_limit(
    env: dict[str, str], tmp_path: Path, costly: str, limit: str
) -> None:
    (tmp_path / "list.csv").write_text(GOOD_CSV)
    _import(env, tmp_path / "list.csv")
    template = tmp_path / "costly"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ first_name }}")
    (template / "body.html").write_text(f"<p>Hi {{{{ first_name }}}}</p>\n<p>{costly}</p>\n")
    campaign_id = json.loads(_create(env, template, "--json").stdout)["id"]
    result = run_edm(
        ["campaigns", "schedule", str(campaign_id), "--now"],
        {**env, "EDM_TEMPLATE_RENDER_CPU_S": "1"},
    )
    _assert_one_line_error(result, limit)
    status = json.loads(run_edm(["campaigns", "status", str(campaign_id), "--json"], env).stdout)
    assert status["state"] == "draft"
    assert status["total"] == 0


@pytest.mark.parametrize("action", ["status", "pause", "resume", "cancel", "schedule"])
def test_an_unknown_campaign_id_is_named(env: dict[str, str], action: str) -> None:
    extra = ["--now"] if action == "schedule" else []
    _assert_one_line_error(run_edm(["campaigns", action, "999", *extra], env), "campaign 999")


def test_an_unknown_list_or_template_is_named(env: dict[str, str], tmp_path: Path) -> None:
    base = ["campaigns", "create", "--name", "x", "--from", "news@example.com"]
    _assert_one_line_error(
        run_edm([*base, "--list", "nope", "--template", "newsletter"], env), "nope"
    )
    (tmp_path / "list.csv").write_text(GOOD_CSV)
    _import(env, tmp_path / "list.csv")
    _assert_one_line_error(
        run_edm([*base, "--list", "people", "--template", "no-such-template"], env),
        "no-such-template",
    )


def test_an_unknown_relay_is_refused_at_create_naming_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "list.csv").write_text(GOOD_CSV)
    _import(env, tmp_path / "list.csv")
    relay = env["EDM_SMTP_URL"].removeprefix("smtp://")
    result = run_edm(
        ["campaigns", "create", "--name", "x", "--list", "people", "--template", "newsletter",
         "--from", "news@example.com", "--relay", relay, "--relay", "backup"],
        env,
    )  # fmt: skip
    _assert_one_line_error(result, f"relay 'backup' is not configured (relays: {relay})")
    assert _counts(env)[2] == 0


def test_unreachable_smtp_relay_stops_the_worker_with_one_line(env: dict[str, str]) -> None:
    env = {**env, "EDM_SMTP_URL": f"smtp://127.0.0.1:{_closed_port()}"}
    _assert_one_line_error(run_edm(["worker"], env, timeout_s=60), "127.0.0.1")


def test_unreachable_redis_stops_the_worker_with_one_line(env: dict[str, str]) -> None:
    env = {**env, "EDM_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"}
    _assert_one_line_error(run_edm(["worker"], env, timeout_s=60), "Redis")


def test_a_bad_smtp_url_is_named(env: dict[str, str]) -> None:
    env = {**env, "EDM_SMTP_URL": "http://relay.example.com"}
    _assert_one_line_error(run_edm(["worker"], env, timeout_s=60), "EDM_SMTP_URL")
