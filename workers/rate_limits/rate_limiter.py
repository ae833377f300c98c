"""What every limiter does the same way: wait for a permit, hold it, give it back.

Implementations write three small hooks: ``_try_acquire`` (one atomic check-and-take over a
set of limits), ``_renew`` and ``_release`` (for connection slots, the only limits a permit
holds on to).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from workers.rate_limits.limits import Concurrency, Limit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permit:
    """Leave to go ahead. ``held`` are the connection slots to give back once done."""

    token: str
    held: tuple[Concurrency, ...] = ()
    granted_at: float | None = None
    """When it was granted, in seconds since the epoch by the limiter's shared clock."""
    unconstrained: bool = False
    """No limit applied: none was in force, so none counted this permit."""


@dataclass(frozen=True)
class Denial:
    """Not yet, because of ``limit``; it may allow again in ``wait_s`` seconds.

    ``wait_s`` is None when nobody knows (a connection slot frees when its holder finishes).
    """

    limit: Limit
    wait_s: float | None


class PermitRefused(Exception):
    """Raised by ``acquire`` when its ``give_up`` said so: a signal, not a failure."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(f"no permit: {denial.limit} (retry in {denial.wait_s} s)")
        self.denial = denial


def never(_denial: Denial) -> bool:
    return False


class RateLimiter(ABC):
    """Permits shared by every worker process; see ``acquire``.

    ``poll_s`` is how often to look again for a connection slot, ``check_s`` how often a
    waiter asks its ``give_up`` (so a pause is seen that fast even during a long wait); both
    in seconds.
    """

    def __init__(self, *, poll_s: float = 0.02, check_s: float = 0.25) -> None:
        if poll_s <= 0 or check_s <= 0:
            raise ValueError("poll_s and check_s must be positive")
        self.poll_s = poll_s
        self.check_s = check_s
        # Tokens name connection slots held in Redis, so they must be unique across processes;
        # a random prefix per limiter and a counter cost less than a uuid4 (a syscall) each.
        self._token_prefix = f"{uuid.uuid4().hex}-"
        self._token_numbers = itertools.count()

    @contextlib.asynccontextmanager
    async def acquire(
        self, limits: Sequence[Limit], *, give_up: Callable[[Denial], bool] = never
    ) -> AsyncIterator[Permit]:
        """Wait until every limit in ``limits`` allows, then hold the permit for the block.

        While waiting, ``give_up`` is asked about the latest denial now and then; when it
        answers True, PermitRefused is raised and nothing was taken.
        """
        permit = await self.wait_for(limits, give_up=give_up)
        keeper = asyncio.create_task(self._keep(permit)) if permit.held else None
        try:
            yield permit
        finally:
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            await self.release(permit)

    async def wait_for(
        self, limits: Sequence[Limit], *, give_up: Callable[[Denial], bool] = never
    ) -> Permit:
        """The waiting half of ``acquire``; the caller must ``release`` the permit."""
        loop = asyncio.get_running_loop()
        while True:
            answer = await self.try_acquire(limits)
            if isinstance(answer, Permit):
                return answer
            if give_up(answer):
                raise PermitRefused(answer)
            deadline = loop.time() + self._pause_s(answer)
            while (remaining_s := deadline - loop.time()) > 0:
                await asyncio.sleep(min(remaining_s, self.check_s))
                if give_up(answer):
                    raise PermitRefused(answer)

    async def try_acquire(self, limits: Sequence[Limit]) -> Permit | Denial:
        """One attempt: a permit, or why not and for how long."""
        token = f"{self._token_prefix}{next(self._token_numbers)}"
        if not limits:
            return Permit(token, unconstrained=True)
        return await self._try_acquire(limits, token)

    async def release(self, permit: Permit) -> None:
        """Give back the permit's connection slots; never raises."""
        if not permit.held:
            return
        try:
            await self._release(permit)
        except Exception:
            # Raising here would lose the result of a send that already happened; the slot
            # frees itself once its hold time passes.
            log.warning("could not release connection slots %s", permit.held, exc_info=True)

    def _pause_s(self, denial: Denial) -> float:
        if denial.wait_s is None:
            return self.poll_s * random.uniform(0.5, 1.5)
        # A little jitter so the waiters that were told the same time do not all ask at once.
        return denial.wait_s + random.uniform(0, min(denial.wait_s, 0.002))

    async def _keep(self, permit: Permit) -> None:
        interval_s = min(slot.hold_s for slot in permit.held) / 3
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._renew(permit)
            except Exception:
                log.warning("could not renew connection slots %s", permit.held, exc_info=True)

    @abstractmethod
    async def _try_acquire(self, limits: Sequence[Limit], token: str) -> Permit | Denial: ...

    @abstractmethod
    async def _renew(self, permit: Permit) -> None: ...

    @abstractmethod
    async def _release(self, permit: Permit) -> None: ...
