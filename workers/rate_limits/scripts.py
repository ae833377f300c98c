"""The Lua scripts that make every check-and-take in Redis atomic, read from ``lua/`` once.

Times are microseconds of Redis's own clock (TIME), so workers on hosts whose clocks disagree
still share one schedule. Numbers are written with ``%.0f``: Lua's tostring() would print a
microsecond timestamp as ``1.7e+15`` and lose the precision that matters.

Each limiter script is ``lua/prelude.lua`` (helpers every script shares: Redis runs each script
alone, with no way to load a library) followed by its own file. The other Lua the project runs in
Redis (send-rate counters, sign-in limits) lives beside them and is read by :func:`read_script`.
The files ship as package data.
"""

from __future__ import annotations

from importlib.resources import files

_LUA = files(__package__) / "lua"


def read_script(name: str) -> str:
    """The Lua in ``lua/<name>``."""
    return (_LUA / name).read_text("utf-8")


def _script(name: str) -> str:
    return read_script("prelude.lua") + "\n" + read_script(name)


ACQUIRE = _script("acquire.lua")
RENEW_SLOTS = _script("renew_slots.lua")
SLOW_DOWN = _script("slow_down.lua")
FACTORS = _script("factors.lua")
