"""The Lua scripts that make every check-and-take in Redis atomic, read from ``lua/`` once.

Times are microseconds of Redis's own clock (TIME), so workers on hosts whose clocks disagree
still share one schedule. Numbers are written with ``%.0f``: Lua's tostring() would print a
microsecond timestamp as ``1.7e+15`` and lose the precision that matters.

Each script is ``lua/prelude.lua`` (helpers every script shares: Redis runs each script alone,
with no way to load a library) followed by its own file. The files ship as package data.
"""

from __future__ import annotations

from importlib.resources import files

_LUA = files(__package__) / "lua"


def _script(name: str) -> str:
    return (_LUA / "prelude.lua").read_text("utf-8") + "\n" + (_LUA / name).read_text("utf-8")


ACQUIRE = _script("acquire.lua")
RENEW_SLOTS = _script("renew_slots.lua")
SLOW_DOWN = _script("slow_down.lua")
FACTORS = _script("factors.lua")
