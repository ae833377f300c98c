"""``edm users`` and ``edm serve`` as a person runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _stop_process_group, run_edm, wait_until
from tests.tracking_helpers import edm_web_server, free_port

PASSWORD = "a long enough password\n"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    import os

    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY="test-secret",
    )
    return environment


@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with edm_web_server("serve", env, tmp_path / "serve.log") as port:
        yield f"http://127.0.0.1:{port}"


def test_a_user_is_created_from_standard_input_and_gets_api_tokens(
    env: dict[str, str], served: str
) -> None:
    created = run_edm(
        ["users", "create", "--email", "Ops@Example.com", "--password-stdin"],
        env,
        stdin="a long enough password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "user ops@example.com created" in created.stdout
    token = run_edm(["users", "token", "--email", "ops@example.com"], env)
    assert token.returncode == 0, token.stderr
    bearer = token.stdout.strip()
    assert bearer.startswith("edm_")

    request = urllib.request.Request(
        f"{served}/api/me", headers={"Authorization": f"Bearer {bearer}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer)["email"] == "ops@example.com"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{served}/api/me", timeout=5)
    refused.value.close()
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as forged:
        urllib.request.urlopen(f"{served}/o/forged.gif", timeout=5)
    forged.value.close()
    assert forged.value.code == 404  # the tracking routes are served too, without signing in


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["users", "create", "--email", "a@example.com", "--password-stdin"],
            "short\n",
            "at least",
        ),
        (["users", "create", "--email", "not-an-address", "--password-stdin"], "x" * 12, "not-an"),
        (["users", "create", "--email", "a@example.com"], None, "use --password-stdin"),
        (["users", "token", "--email", "nobody@example.com"], None, "user nobody@example.com"),
        (
            ["users", "create", "--email", "a@example.com", "--role", "boss", "--password-stdin"],
            "a long enough password\n",
            "--role: expected one of admin, editor, viewer, got 'boss'",
        ),
        (
            ["users", "create", "--email", "a@example.com", "--password-stdin"],
            "password12345\n",
            "password: it is one of the most common passwords",
        ),
        (
            ["users", "create", "--email", "a@example.com", "--password-stdin"],
            "zzzzzzzzzzzz\n",
            "password: one character repeated",
        ),
        (["users", "delete", "--email", "nobody@example.com"], None, "--email: user nobody@"),
        (["users", "role", "--email", "nobody@example.com", "--role", "viewer"], None, "nobody@"),
        (["users", "tokens", "revoke", "42"], None, "ID: no API token 42"),
        (["serve", "--port", "70000"], None, "--port: 70000 is not a TCP port"),
    ],
)
def test_user_and_serve_commands_fail_in_one_line(
    env: dict[str, str], args: list[str], stdin: str | None, message: str
) -> None:
    result = run_edm(args, env, stdin=stdin if stdin is not None else "")
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_accounts_roles_and_tokens_from_the_command_line(env: dict[str, str]) -> None:
    def edm(*args: str, stdin: str = "") -> str:
        result = run_edm(list(args), env, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    # The first account is an admin; every later one names its role.
    assert "created as admin" in edm(
        "users", "create", "--email", "boss@example.com", "--password-stdin", stdin=PASSWORD
    )
    unnamed = run_edm(
        ["users", "create", "--email", "ed@example.com", "--password-stdin"], env, stdin=PASSWORD
    )
    assert unnamed.returncode == 1
    assert unnamed.stderr.strip() == (
        "edm: error: --role: choose admin, editor or viewer for this account"
    )
    edm(
        "users",
        "create",
        "--email",
        "ed@example.com",
        "--role",
        "Editor",
        "--password-stdin",
        stdin=PASSWORD,
    )
    edm("users", "role", "--email", "ed@example.com", "--role", "viewer")
    users = json.loads(edm("users", "list", "--json"))["users"]
    assert [(user["email"], user["role"]) for user in users] == [
        ("boss@example.com", "admin"),
        ("ed@example.com", "viewer"),
    ]

    kept = edm("users", "token", "--email", "ed@example.com", "--name", "kept").strip()
    edm("users", "token", "--email", "ed@example.com", "--name", "ci", "--expires-days", "30")
    tokens = json.loads(edm("users", "tokens", "list", "--email", "ed@example.com", "--json"))
    by_name = {token["name"]: token for token in tokens["tokens"]}
    assert set(by_name) == {"kept", "ci"}
    assert by_name["kept"]["expires_at"] is None and by_name["ci"]["expires_at"] is not None
    assert kept not in json.dumps(tokens)  # only a hash is stored, never shown again
    assert "revoked" in edm("users", "tokens", "revoke", str(by_name["ci"]["id"]))

    edm(
        "users",
        "password",
        "--email",
        "ed@example.com",
        "--password-stdin",
        "--keep-tokens",
        stdin="a second long password\n",
    )
    listed = edm("users", "tokens", "list", "--email", "ed@example.com")
    assert [line.split("\t")[1] for line in listed.splitlines()] == ["kept"]
    edm(
        "users",
        "password",
        "--email",
        "ed@example.com",
        "--password-stdin",
        stdin="a third long password\n",
    )
    assert edm("users", "tokens", "list", "--email", "ed@example.com") == ""

    only_admin = run_edm(["users", "delete", "--email", "boss@example.com"], env)
    assert only_admin.returncode == 1
    assert "--email: boss@example.com is the only admin" in only_admin.stderr
    edm("users", "delete", "--email", "ed@example.com")
    assert [user["email"] for user in json.loads(edm("users", "list", "--json"))["users"]] == [
        "boss@example.com"
    ]


def test_a_second_account_with_the_same_address_is_refused(env: dict[str, str]) -> None:
    args = ["users", "create", "--email", "a@example.com", "--role", "admin", "--password-stdin"]
    assert run_edm(args, env, stdin="long enough password\n").returncode == 0
    again = run_edm(args, env, stdin="long enough password\n")
    assert again.returncode == 1
    assert "a user a@example.com already exists" in again.stderr
    changed = run_edm(
        ["users", "password", "--email", "a@example.com", "--password-stdin"],
        env,
        stdin="another long password\n",
    )
    assert changed.returncode == 0, changed.stderr


def test_the_demo_can_leave_the_dashboard_running(tmp_path: Path) -> None:
    import os
    import re
    import signal

    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    port = free_port()
    output = tmp_path / "demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "edm", "demo", "--serve", "--port", str(port)],
            cwd=tmp_path,
            env={**environment, "COLUMNS": "200"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        password = re.compile(r"with password (\S+)")
        assert wait_until(lambda: password.search(output.read_text()), timeout_s=240), (
            output.read_text()
        )
        secret = password.search(output.read_text()).group(1)
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/login", timeout=1):
                    return True
            except OSError:
                return False

        assert wait_until(answers, timeout_s=30)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(f"{url}/login", timeout=5) as form:
            token = form.read().decode().split('name="csrf_token" value="', 1)[1].split('"')[0]
        body = urllib.parse.urlencode(
            {"email": "demo@example.com", "password": secret, "csrf_token": token}
        ).encode()
        with opener.open(f"{url}/login", data=body, timeout=10) as signed_in:
            assert signed_in.url.endswith("/campaigns")
        with opener.open(f"{url}/api/campaigns", timeout=5) as campaigns:
            assert [c["state"] for c in json.load(campaigns)] == ["completed"]

        # The worker is still running, seen by the dashboard: its campaign processes and its
        # transactional lane, one node each.
        def worker_online() -> bool:
            with opener.open(f"{url}/api/workers", timeout=5) as answer:
                rows = [row for row in json.load(answer)["workers"] if row["online"]]
            return sorted(row["lane"] for row in rows) == ["campaign", "transactional"]

        assert wait_until(worker_online, timeout_s=60)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _stop_process_group(process)
    assert "captured" in output.read_text()
