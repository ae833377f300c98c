"""The front doors of transactional mail as their own processes: ``edm serve`` (the JSON API)
and ``edm submit serve`` (SMTP submission), with the account and the login that use them."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from bench.processes import end_process, log_tail, start_logged, wait_for_log_line
from bench.project_run import edm_command
from bench.sinks import free_port
from bench.tx_clients import SUBMISSION_LOGIN

START_TIMEOUT_S = 60.0
API_ACCOUNT = "bench@bench.example"
_SUBMISSION_PASSWORD = re.compile(r"password \(shown this once[^)]*\): (\S+)")
_SUBMISSION_PORT = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(")


def _run_edm(args: list[str], env: dict[str, str], *, stdin: str | None = None) -> str:
    result = subprocess.run(
        edm_command(*args), env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"edm {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def api_token(env: dict[str, str]) -> str:
    """An editor's (here the first, admin) account and a new API token of it."""
    password = secrets.token_urlsafe(18)
    _run_edm(
        ["users", "create", "--email", API_ACCOUNT, "--role", "admin", "--password-stdin"],
        env,
        stdin=password + "\n",
    )
    return _run_edm(["users", "token", "--email", API_ACCOUNT, "--name", "bench"], env).strip()


def submission_password(env: dict[str, str]) -> str:
    """A new SMTP credential for ``SUBMISSION_LOGIN`` (sender domain bench.example), no rate."""
    output = _run_edm(["users", "smtp-credentials", "create", "--email", SUBMISSION_LOGIN], env)
    found = _SUBMISSION_PASSWORD.search(output)
    if found is None:
        raise RuntimeError(f"edm users smtp-credentials create: no password in {output!r}")
    return found.group(1)


def start_api(stack: ExitStack, env: dict[str, str], log_path: Path) -> tuple[str, int]:
    """``edm serve`` on a free loopback port until the stack closes; its base URL and pid."""
    port = free_port()
    process = start_logged(
        edm_command("serve", "--host", "127.0.0.1", "--port", str(port)),
        env=env,
        log_path=log_path,
    )
    stack.callback(end_process, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"edm serve exited with code {process.returncode}: {log_tail(log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"http://127.0.0.1:{port}", process.pid
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"edm serve did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s")


def start_submission(stack: ExitStack, env: dict[str, str], log_path: Path) -> int:
    """``edm submit serve`` on a port of the system's choosing until the stack closes; its port."""
    process = start_logged(
        edm_command("submit", "serve", "--host", "127.0.0.1", "--port", "0"),
        env=env,
        log_path=log_path,
    )
    stack.callback(end_process, process)
    wait_for_log_line(process, log_path, "listening on", timeout_s=START_TIMEOUT_S)
    found = _SUBMISSION_PORT.search(log_path.read_text())
    if found is None:
        raise RuntimeError(f"edm submit serve: no port in {log_tail(log_path)}")
    return int(found.group(1))
