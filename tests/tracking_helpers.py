"""Reading a delivered message's tracking links, and requesting them over real HTTP."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import _stop_process_group, wait_until


@dataclass(frozen=True)
class Delivered:
    """One message as it arrived: its HTML links by their text, its pixel, its headers."""

    message: EmailMessage
    html: str
    text: str
    links: dict[str, str]
    images: list[str]

    @property
    def pixel(self) -> str:
        (pixel,) = [src for src in self.images if "/o/" in src]
        return pixel

    @property
    def list_unsubscribe(self) -> str:
        return str(self.message["List-Unsubscribe"]).strip("<>")


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self.images: list[str] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._href, self._text = values.get("href") or "", []
        elif tag == "img":
            self.images.append(values.get("src") or "")

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links["".join(self._text).strip()] = self._href
            self._href = None


def parse_delivered(data: bytes) -> Delivered:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    collector = _LinkCollector()
    collector.feed(html)
    return Delivered(message, html, text_part.get_content(), collector.links, collector.images)


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the redirect itself is what is being tested


def fetch(url: str, *, data: bytes | None = None, headers: Mapping[str, str] = {}) -> HttpReply:
    request = urllib.request.Request(url, data=data, headers=dict(headers))
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=30) as response:
            return HttpReply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return HttpReply(error.code, error.headers, error.read())


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def edm_web_server(
    command: str, environment: Mapping[str, str], log_path: Path, *options: str
) -> Iterator[int]:
    """``edm serve`` or ``edm track`` (with ``options``) as a process of its own on a free
    loopback port, its output in ``log_path``; yields the port once it accepts connections,
    stops it after."""
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "edm", command, *options),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: accepts_connections(port), timeout_s=60), log_path.read_text()
        yield port
    finally:
        _stop_process_group(process)
