"""A fast SMTP sink that accepts everything and only counts: the fallback when Postfix's
``smtp-sink`` is not installed.

It speaks just enough SMTP for aiosmtplib, smtplib and smtp-source (EHLO/HELO, MAIL, RCPT,
DATA, RSET, NOOP, QUIT, pipelined or not) and never looks inside a message beyond finding its
end. Run it as its own process so that its work does not share a GIL with what it measures::

    python -m bench.counting_sink --port 2525

It prints ``mesg=COUNT bytes=BYTES`` lines on stdout whenever the count changed (at most every
``REPORT_INTERVAL_S``), the same ``mesg=`` counter that ``smtp-sink -c`` prints. With
``--mark-domain D`` it also prints ``arrived ADDRESS SECONDS`` the moment it answers 250 to a
message for a recipient at D, SECONDS being ``time.monotonic()``: Linux's monotonic clock is the
machine's, so the benchmark compares it with its own (``bench.transactional``'s latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time

REPORT_INTERVAL_S = 0.02
_END_OF_DATA = b"\r\n.\r\n"
_MAX_COMMAND_LINE = 4096

_EHLO_REPLY = (
    b"250-counting-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    b"250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES\r\n"
)
_REPLIES = {
    b"HELO": b"250 counting-sink\r\n",
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"RSET": b"250 2.0.0 Ok\r\n",
    b"NOOP": b"250 2.0.0 Ok\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
}


class Counter:
    def __init__(self, mark_domain: str = "") -> None:
        self.messages = 0
        self.bytes = 0
        self.mark = f"@{mark_domain.lower()}>".encode() if mark_domain else b""
        """A RCPT line naming a recipient at the marked domain ends with this."""

    def arrived(self, recipients: list[bytes]) -> None:
        if recipients:
            now = time.monotonic()
            sys.stdout.write("".join(f"arrived {r.decode()} {now:.6f}\n" for r in recipients))


class _SinkProtocol(asyncio.Protocol):
    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._in_data = False
        self._data_bytes = 0
        self._marked: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(b"220 counting-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        replies: list[bytes] = []
        while self._buffer:
            if self._in_data:
                if not self._consume_data():
                    break
                replies.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                if len(self._buffer) > _MAX_COMMAND_LINE:
                    replies.append(b"500 5.5.2 Line too long\r\n")
                    self._buffer = b""
                break
            line, self._buffer = self._buffer[:line_end], self._buffer[line_end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(_EHLO_REPLY)
            elif verb == b"QUIT":
                replies.append(b"221 2.0.0 Bye\r\n")
                self._write(replies)
                assert self._transport is not None
                self._transport.close()
                return
            else:
                replies.append(_REPLIES.get(verb, b"502 5.5.2 Command not implemented\r\n"))
                self._note_recipient(verb, line)
                if verb == b"DATA":
                    self._in_data = True
                    self._data_bytes = 0
                    # The message may be empty: its end then directly follows the DATA line.
                    self._buffer = b"\r\n" + self._buffer
        self._write(replies)

    def _note_recipient(self, verb: bytes, line: bytes) -> None:
        mark = self._counter.mark
        if not mark:
            return
        if verb in (b"MAIL", b"RSET"):
            self._marked = []
        elif verb == b"RCPT" and line.lower().endswith(mark):
            self._marked.append(line[line.index(b"<") + 1 : -1])

    def _consume_data(self) -> bool:
        """Drop message bytes up to the end-of-data line; True once the message is complete."""
        end = self._buffer.find(_END_OF_DATA)
        if end < 0:
            # Keep the last bytes: the terminator may straddle two reads.
            keep = len(_END_OF_DATA) - 1
            if len(self._buffer) > keep:
                self._data_bytes += len(self._buffer) - keep
                self._buffer = self._buffer[-keep:]
            return False
        self._data_bytes += end
        self._buffer = self._buffer[end + len(_END_OF_DATA) :]
        self._in_data = False
        self._counter.messages += 1
        # The CRLF put in front of the data by DATA is not the client's.
        self._counter.bytes += max(0, self._data_bytes - 2)
        self._counter.arrived(self._marked)
        self._marked = []
        return True

    def _write(self, replies: list[bytes]) -> None:
        if replies and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(replies))


async def serve(host: str, port: int, mark_domain: str = "") -> None:
    counter = Counter(mark_domain)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _SinkProtocol(counter), host, port, reuse_address=True, backlog=512
    )
    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    print("ready", flush=True)
    reported = -1
    async with server:
        while not stop.is_set():
            if counter.messages != reported:
                reported = counter.messages
                sys.stdout.write(f"mesg={counter.messages} bytes={counter.bytes}\n")
                sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_INTERVAL_S)


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP sink that counts messages")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--mark-domain", default="", help="print the arrival time of each message to this domain"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.mark_domain))


if __name__ == "__main__":
    main()
