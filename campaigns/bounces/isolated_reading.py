"""Read a message that reached the bounce address in a child process with a CPU-time limit.

The parse is bounded (:mod:`campaigns.bounces.reading_limits`), but it is still work on text
anyone can send, done by libraries (the email package, the heuristic bounce parser) whose every
path no bound covers. In ``edm bounces serve`` a CPU-bound parse in the server's own process would
hold the GIL the event loop needs, so no other client would get even a banner until it ended. In
a child process (:mod:`campaigns.core.limited_child`) it costs a fork, and a message over the
limit is refused with :class:`MailTooCostly` while the server keeps answering.
"""

from __future__ import annotations

from collections.abc import Callable

from campaigns.bounces.reading import MailReading, read_mail
from campaigns.bounces.reading_limits import MailTooCostly, check_message_size
from campaigns.core.limited_child import preload_in_children, run_limited

MailReader = Callable[[bytes], MailReading]

READ_CPU_LIMIT_S = 5.0
"""A bounce reads in milliseconds; the bounded worst case in well under a second."""
READ_MEMORY_LIMIT_BYTES = 1024**3

preload_in_children(__name__)


class ReadingCpuTimeExceeded(BaseException):
    """Raised by the CPU-time alarm; not an ``Exception``, so that the heuristic parser's own
    ``except Exception`` around each of its detectors does not swallow it."""


def read_mail_isolated(
    raw: bytes, *, cpu_limit_s: float = READ_CPU_LIMIT_S, read: MailReader = read_mail
) -> MailReading:
    """``read(raw)`` in a child process that may use ``cpu_limit_s`` of CPU time and
    ``READ_MEMORY_LIMIT_BYTES`` of memory; MailTooCostly when it is stopped."""
    check_message_size(raw)  # before it is copied to a child for nothing
    outcome = run_limited(
        _reading_outcome,
        (read, raw),
        cpu_limit_s=cpu_limit_s,
        memory_limit_bytes=READ_MEMORY_LIMIT_BYTES,
        name="read bounce",
        what="reading the message",
        alarm=ReadingCpuTimeExceeded,
    )
    if isinstance(outcome, MailReading):
        return outcome
    if isinstance(outcome, Exception):
        raise outcome
    raise MailTooCostly(
        f"reading the message was stopped (limits {cpu_limit_s:g} s of CPU"
        f" and {READ_MEMORY_LIMIT_BYTES // 1024**2} MB of memory)"
    )


def _reading_outcome(read: MailReader, raw: bytes) -> MailReading | Exception:
    """The reading, or the error to raise in the parent (as one that surely pickles)."""
    try:
        return read(raw)
    except MailTooCostly as error:
        return error
    except ReadingCpuTimeExceeded as error:
        return MailTooCostly(str(error))
    except MemoryError:
        return MailTooCostly(f"out of memory (limit {READ_MEMORY_LIMIT_BYTES // 1024**2} MB)")
    except Exception as error:
        return ValueError(f"cannot be parsed: {error!r}")
