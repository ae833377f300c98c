"""A real in-process SMTP server for tests: aiosmtpd in a thread, recording what it accepts.

Replies are injected per test: ``behaviour`` decides the reply to each RCPT and
``data_behaviour`` the reply to the final "." (or makes the server hang or hang up instead).
"""

from __future__ import annotations

import asyncio
import enum
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class DataEnd(enum.Enum):
    """What the server does at the final "." instead of replying."""

    HANG = "never reply; the message is not recorded"
    DROP = "record the message, then close the connection without replying"


RcptBehaviour = Callable[[str], tuple[int, str] | None]
DataBehaviour = Callable[[list[str]], tuple[int, str] | DataEnd | None]


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    received_at: float = field(default_factory=time.time)


class RecordingSmtpServer:
    """aiosmtpd Controller on 127.0.0.1:<free port> in a thread, recording every accepted message.

    ``delay_s`` delays every reply to the final "."; ``idle_timeout_s`` makes the server close
    connections idle that long, as real relays do; ``tls_context`` offers STARTTLS (required
    unless ``tls_required`` is false); with
    ``credentials`` AUTH is required (aiosmtpd only allows it after STARTTLS). ``pipelining``
    offers PIPELINING, as production relays do (aiosmtpd reads commands one line at a time, so
    it answers pipelined commands in order); without it clients send one command at a time.
    """

    def __init__(
        self,
        *,
        behaviour: RcptBehaviour | None = None,
        data_behaviour: DataBehaviour | None = None,
        delay_s: float = 0.0,
        idle_timeout_s: float = 300.0,
        tls_context: ssl.SSLContext | None = None,
        tls_required: bool = True,
        credentials: tuple[str, str] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.host = "127.0.0.1"
        self.pipelining = pipelining
        self.port = 0
        self.messages: list[ReceivedMessage] = []
        self._behaviour = behaviour
        self._data_behaviour = data_behaviour
        self._delay_s = delay_s
        self._idle_timeout_s = idle_timeout_s
        self._tls_context = tls_context
        self._tls_required = tls_required
        self._credentials = credentials
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._connections = 0
        self._sessions: set[SMTP] = set()
        self._controller: _CountingController | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """TCP sessions opened by clients since start()."""
        with self._lock:
            return self._connections

    def start(self) -> None:
        self.port = _free_port(self.host)
        options: dict[str, Any] = {"timeout": self._idle_timeout_s}
        if self._tls_context is not None:
            options.update(tls_context=self._tls_context, require_starttls=self._tls_required)
        if self._credentials is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
        self._controller = _CountingController(
            _Handler(self), hostname=self.host, port=self.port, owner=self, **options
        )
        self._controller.start()
        with self._lock:
            # start() opens one connection of its own to check the server is up.
            self._connections = 0

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        # Close client sessions first: stopping the loop with transports open would leave
        # them to the garbage collector, which warns about each.
        asyncio.run_coroutine_threadsafe(self._close_sessions(), controller.loop).result(5)
        controller.stop()

    def disconnect_all(self) -> None:
        """Close every open client connection now, as a relay dropping idle connections does."""
        assert self._controller is not None
        asyncio.run_coroutine_threadsafe(self._close_sessions(), self._controller.loop).result(5)

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Wait until at least ``count`` messages were accepted; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.messages) >= count, timeout_s)

    def __enter__(self) -> RecordingSmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, envelope: Envelope) -> None:
        content = envelope.original_content or b""
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), data=content
        )
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def _session_opened(self, session: SMTP) -> None:
        with self._lock:
            self._connections += 1
            self._sessions.add(session)

    def _session_closed(self, session: SMTP) -> None:
        with self._lock:
            self._sessions.discard(session)

    async def _close_sessions(self) -> None:
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            if session.transport is not None:
                session.transport.close()
        # Let connection_lost run, so each session finishes before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert self._credentials is not None
        user, password = self._credentials
        given = (
            (auth_data.login.decode(), auth_data.password.decode())
            if isinstance(auth_data, LoginPassword)
            else None
        )
        if given == (user, password):
            return AuthResult(success=True, auth_data=auth_data)
        # handled defaults to True, which would leave the client without any reply.
        return AuthResult(success=False, handled=False)


class _Handler:
    def __init__(self, server: RecordingSmtpServer) -> None:
        self._server = server

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if not self._server.pipelining:
            return responses
        # Every line but the last is "250-..."; the new one goes just before it.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        behaviour = self._server._behaviour
        reply = behaviour(address) if behaviour is not None else None
        if reply is not None:
            return f"{reply[0]} {reply[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._server._delay_s:
            await asyncio.sleep(self._server._delay_s)
        behaviour = self._server._data_behaviour
        reply = behaviour(list(envelope.rcpt_tos)) if behaviour is not None else None
        if reply is DataEnd.DROP:
            self._server._record(envelope)
            assert server.transport is not None
            server.transport.close()
        if isinstance(reply, DataEnd):
            # Closing the connection cancels this coroutine; a hang waits for the client to go.
            await asyncio.Event().wait()
        if isinstance(reply, tuple):
            return f"{reply[0]} {reply[1]}"
        self._server._record(envelope)
        return "250 2.0.0 OK queued"


class _CountingController(Controller):
    def __init__(self, handler: _Handler, *, owner: RecordingSmtpServer, **options: Any) -> None:
        super().__init__(handler, **options)
        self._owner = owner

    def factory(self) -> SMTP:
        return _CountingSmtp(self.handler, owner=self._owner, **self.SMTP_kwargs)


class _CountingSmtp(SMTP):
    def __init__(self, handler: _Handler, *, owner: RecordingSmtpServer, **options: Any) -> None:
        super().__init__(handler, **options)
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        is_new_connection = self.transport is None
        super().connection_made(transport)
        if is_new_connection:
            self._owner._session_opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._session_closed(self)
        super().connection_lost(error)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
