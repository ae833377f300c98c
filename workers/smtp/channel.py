"""The command channel of an SMTP connection once it is open: MAIL, RCPT and DATA written together
when the relay offers PIPELINING (RFC 2920), one at a time when it does not, replies read in order.

aiosmtplib connects, secures, greets and authenticates. It reads one reply per command written
and has no pipelining, which costs a bulk sender two extra round trips per message: three
quarters of a send's trips to the relay. So once the connection is ready its transport is handed
to this protocol. Errors are aiosmtplib's exceptions, so callers handle both alike.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Container, Sequence

from aiosmtplib import (
    SMTPReadTimeoutError,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
)

_MAX_LINE = 8192
"""A reply line longer than this is not SMTP (RFC 5321 allows 512)."""


class SmtpChannel(asyncio.Protocol):
    """Commands out, replies back in order, over a transport already greeted by the relay.

    ``extensions`` are the EHLO keywords the relay offered, lower case. Use from one event loop.
    """

    def __init__(self, transport: asyncio.Transport, extensions: frozenset[str]) -> None:
        self.extensions = extensions
        self.pipelining = "pipelining" in extensions
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        transport.set_protocol(self)

    @property
    def is_connected(self) -> bool:
        return self._error is None and not self._transport.is_closing()

    async def transaction(
        self, commands: Sequence[bytes], accepted: Sequence[Container[int]], timeout_s: float
    ) -> list[SMTPResponse]:
        """Send ``commands`` (each a line without CRLF) and return their replies.

        Pipelined, every command is written at once and every reply read. Otherwise each waits
        for the one before, and the replies stop at the first whose code is not ``accepted``.
        """
        if self.pipelining:
            self.write(b"".join(command + b"\r\n" for command in commands))
            return [await self.reply(timeout_s) for _ in commands]
        replies = []
        for command, codes in zip(commands, accepted, strict=True):
            self.write(command + b"\r\n")
            replies.append(reply := await self.reply(timeout_s))
            if reply.code not in codes:
                break
        return replies

    async def command(self, command: bytes, timeout_s: float) -> SMTPResponse:
        self.write(command + b"\r\n")
        return await self.reply(timeout_s)

    def write(self, data: bytes) -> None:
        if not self.is_connected:
            raise self._error or SMTPServerDisconnected("Connection lost")
        self._transport.write(data)

    async def reply(self, timeout_s: float) -> SMTPResponse:
        """The next reply, in the order the commands were written."""
        if not self._replies and self._error is None:
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout_s, self._time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._replies:
            return self._replies.popleft()
        assert self._error is not None
        raise self._error

    def close(self) -> None:
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        try:
            self._parse_replies()
        except SMTPResponseException as error:
            self._fail(error)
            self._transport.abort()
            return
        if self._replies:
            self._wake()

    def eof_received(self) -> bool:
        self._fail(SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        error = SMTPServerDisconnected("Connection lost")
        error.__cause__ = exc
        self._fail(error)

    def _parse_replies(self) -> None:
        lines: list[bytes] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start : end + 1])
            lines.append(line)
            start = end + 1
            if len(line) > _MAX_LINE:
                raise SMTPResponseException(-1, "Response too long")
            if line[3:4] != b"-":
                self._replies.append(_reply(lines))
                del self._buffer[:start]
                lines, start = [], 0
        if len(self._buffer) > _MAX_LINE * 8:
            raise SMTPResponseException(-1, "Response too long")

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(SMTPReadTimeoutError("Timed out waiting for server response"))


def _reply(lines: list[bytes]) -> SMTPResponse:
    try:
        code = int(lines[0][:3])
    except ValueError:
        text = lines[0].decode("utf-8", "replace").strip()
        raise SMTPResponseException(-1, f"Malformed SMTP response line: {text}") from None
    message = b"\n".join(line[4:].strip(b" \t\r\n") for line in lines)
    return SMTPResponse(code, message.decode("utf-8", "surrogateescape"))
