"""A real Dovecot (IMAP and POP3) for tests, started in the foreground with its own config in a
temporary folder: maildir storage there, one plaintext user, free loopback ports, no TLS.

Runs as root (as CI does) with Dovecot's own unprivileged users, or as any other user with that
user for every Dovecot process.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

DOVECOT = shutil.which("dovecot") or next(
    (path for path in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if Path(path).exists()), None
)
USER = "bounces"
PASSWORD = "secret-for-tests"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
{login_users}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DovecotServer:
    def __init__(self, root: Path) -> None:
        if DOVECOT is None:
            raise RuntimeError("dovecot is not installed")
        self.root = root
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def imap_url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.imap_port}/INBOX"

    @property
    def pop3_url(self) -> str:
        return f"pop3://{USER}:{PASSWORD}@127.0.0.1:{self.pop3_port}"

    def __enter__(self) -> DovecotServer:
        for folder in ("run", "state", "mail", "home"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Mail is accessed as Dovecot's own user, never as root.
            mail_uid, mail_gid = _ids("dovecot")
            login_users = ""
        else:
            mail_uid, mail_gid = os.getuid(), os.getgid()
            me = getpass.getuser()
            login_users = f"default_login_user = {me}\ndefault_internal_user = {me}"
        for folder in ("mail", "home"):
            os.chown(self.root / folder, mail_uid, mail_gid)
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        config = self.root / "dovecot.conf"
        config.write_text(
            _CONFIG.format(
                root=self.root,
                uid=mail_uid,
                gid=mail_gid,
                login_users=login_users,
                imap_port=self.imap_port,
                pop3_port=self.pop3_port,
            )
        )
        with (self.root / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while not (_listening(self.imap_port) and _listening(self.pop3_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"dovecot did not start: {self.log()}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        texts = []
        for name in ("stderr.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)[-4000:]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
