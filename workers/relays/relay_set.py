"""Sending through a set of relays: weighted choice, failover, and the global limits of each send.

Every send waits for one permit covering all its limits (the total send rate, the relay's rate,
hourly and daily quotas and connection cap, the recipient domain's adaptive rate). A relay that
cannot be connected to is closed for everyone for a cool-off and the message goes to another;
with every relay of the campaign closed the message is deferred, never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from aiosmtplib import SMTPStatus
from redis.asyncio import Redis
from redis.exceptions import RedisError

from campaigns.core.settings import Settings
from workers.rate_limits import (
    AdaptiveSlowdown,
    ClosedWhileSet,
    Concurrency,
    Denial,
    Limit,
    PermitRefused,
    Quota,
    Rate,
    RateLimiter,
    RedisRateLimiter,
    default_burst,
)
from workers.redis_keys import LimitKeys
from workers.relays.config import RelayConfig, RelaySetConfig
from workers.smtp.pool import BeforePayload, SendOutcome, SendOutcomeKind, SmtpPool

log = logging.getLogger(__name__)

SWITCH_RELAY_AFTER_S = 1.0
"""A relay that cannot give a permit sooner than this is passed over while another can."""
CONNECTION_SLOT_HOLD_S = 30.0
LIMITS_RETRY_AFTER_S = 2.0
TRANSACTIONAL_RESERVED_CONNECTIONS = 1
"""Connection slots of a relay with ``max_connections`` that only transactional mail takes."""
"""After Redis failed to answer, sends are handed back without asking it again for this long."""
UNLIMITED_RECHECK_S = 0.5
"""A permit that found no limit in force for its relay and domain (no rate, quota or connection
cap configured, relay not closed, domain not slowed down) lets this process's next sends there go
without asking Redis for this long: there is nothing to count, and a relay closed or a domain
slowed down by another worker is seen at most this late."""
_UNLIMITED_CACHE_SIZE = 10_000

HOUR_S = 3600.0
DAY_S = 86400.0


def connection_slots(max_connections: int, *, transactional: bool) -> int:
    """How many of a relay's ``max_connections`` slots a send may find taken and still go.

    Campaign and transactional sends count in the same set of slots; a campaign send stops
    short of the last ``TRANSACTIONAL_RESERVED_CONNECTIONS``, so a campaign saturating the
    relay leaves room for a verification code. A relay of one connection keeps none back
    (campaigns would never send).
    """
    if transactional or max_connections <= TRANSACTIONAL_RESERVED_CONNECTIONS:
        return max_connections
    return max_connections - TRANSACTIONAL_RESERVED_CONNECTIONS


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def is_throttling(outcome: SendOutcome) -> bool:
    """A "try later" about the recipient's domain: 421, or an enhanced status 4.7.x."""
    if outcome.kind != SendOutcomeKind.DEFERRED or outcome.connect_failed:
        return False
    return outcome.code == SMTPStatus.domain_unavailable or (outcome.status or "").startswith(
        "4.7."
    )


@dataclass
class _Attempt:
    """What one message has learnt about the relays while looking for one to go through."""

    closed: set[str]
    busy: set[str]
    last_failure: SendOutcome | None = None


class RelaySet:
    """The relays of this installation, one SmtpPool each, sharing limits through Redis.

    Use from one event loop. ``random_source`` makes the weighted choice repeatable in tests;
    ``unlimited_recheck_s`` is described at ``UNLIMITED_RECHECK_S``.
    """

    def __init__(
        self,
        config: RelaySetConfig,
        *,
        redis: Redis,
        pools: Mapping[str, SmtpPool],
        limiter: RateLimiter | None = None,
        random_source: random.Random | None = None,
        unlimited_recheck_s: float = UNLIMITED_RECHECK_S,
    ) -> None:
        missing = [relay.name for relay in config.relays if relay.name not in pools]
        if missing:
            raise ValueError(f"no pool for relay {missing[0]!r}")
        self.config = config
        self.keys = LimitKeys(config.namespace)
        self.pools = dict(pools)
        self.limiter = limiter or RedisRateLimiter(redis)
        self.slowdown = AdaptiveSlowdown(redis, config.adaptive)
        self.redis = redis
        self._random = random_source or random.Random()
        self._closed_until: dict[str, float] = {}
        self._limits_unreachable_until = 0.0
        self._unlimited_until: dict[tuple[str, str], float] = {}
        self._unlimited_recheck_s = unlimited_recheck_s

    @classmethod
    def from_settings(cls, config: RelaySetConfig, redis: Redis, settings: Settings) -> RelaySet:
        def pool_size(relay: RelayConfig) -> int:
            # More connections than the relay allows in flight would only sit idle.
            if relay.max_connections:
                return min(settings.smtp_connections, relay.max_connections)
            return settings.smtp_connections

        pools = {
            relay.name: SmtpPool(
                relay.relay,
                size=pool_size(relay),
                timeout_s=settings.smtp_timeout_s,
                data_timeout_s=settings.smtp_data_timeout_s,
            )
            for relay in config.relays
        }
        return cls(config, redis=redis, pools=pools)

    async def send(
        self,
        *,
        relay_names: Sequence[str] | None = None,
        sender: str,
        recipient: str,
        message: bytes,
        should_stop: Callable[[], bool],
        before_payload: BeforePayload | None = None,
        transactional: bool = False,
    ) -> SendOutcome | None:
        """Send through one of ``relay_names`` (the campaign's choice; None: every relay) once
        every limit allows. A ``transactional`` message may take the connection slots of a
        relay that campaigns leave free (``TRANSACTIONAL_RESERVED_CONNECTIONS``).

        None when nothing was sent and the job should be handed back: ``should_stop`` turned
        true while waiting, or the limits in Redis could not be reached (no permit, no send).
        """
        loop = asyncio.get_running_loop()
        if loop.time() < self._limits_unreachable_until:
            return None
        domain = recipient_domain(recipient)
        candidates = self.config.relays_named(relay_names)
        if not candidates:
            return self._unconfigured_outcome(relay_names or ())
        attempt = _Attempt(closed=set(), busy=set())
        while True:
            open_relays = [relay for relay in candidates if self._is_open(relay, attempt)]
            if not open_relays:
                return attempt.last_failure or self._all_closed_outcome(candidates)
            choices = [relay for relay in open_relays if relay.name not in attempt.busy]
            relay = self._weighted_choice(choices or open_relays)
            can_switch = any(other is not relay for other in choices)
            try:
                async with self._permit(
                    relay,
                    domain,
                    self._give_up_rule(should_stop, can_switch=can_switch),
                    transactional=transactional,
                ):
                    if should_stop():
                        return None
                    outcome = await self.pools[relay.name].send(
                        sender=sender,
                        recipient=recipient,
                        message=message,
                        before_payload=before_payload,
                    )
            except PermitRefused as refused:
                if should_stop():
                    return None
                self._note_refusal(relay, refused.denial, attempt)
                continue
            except RedisError as error:
                # Only asking for a permit talks to Redis here, so nothing was sent.
                log.warning("limits in Redis unreachable, handing jobs back: %s", error)
                self._limits_unreachable_until = loop.time() + LIMITS_RETRY_AFTER_S
                return None
            if outcome.connect_failed:
                await self._close_relay(relay, outcome)
                attempt.closed.add(relay.name)
                attempt.last_failure = outcome
                continue
            if is_throttling(outcome):
                await self._slow_down(domain, outcome)
            return replace(outcome, relay=relay.name)

    def limits_for(
        self, relay: RelayConfig, domain: str, *, transactional: bool = False
    ) -> list[Limit]:
        """Every limit a message to ``domain`` through ``relay`` waits for."""
        keys, config = self.keys, self.config
        limits: list[Limit] = [ClosedWhileSet(keys.relay_down(relay.name))]
        if config.send_rate:
            limits.append(Rate(keys.send_rate(), config.send_rate, default_burst(config.send_rate)))
        if relay.per_second:
            limits.append(
                Rate(keys.relay_rate(relay.name), relay.per_second, relay.per_second_burst)
            )
        if relay.per_hour:
            limits.append(Quota(keys.relay_quota(relay.name, "hour"), relay.per_hour, HOUR_S))
        if relay.per_day:
            limits.append(Quota(keys.relay_quota(relay.name, "day"), relay.per_day, DAY_S))
        configured = config.domain_rate(domain)
        base = configured or config.adaptive.unlisted_domain_rate
        limits.append(
            Rate(
                keys.domain_rate(domain),
                base,
                default_burst(base),
                adaptive_key=keys.domain_slowdown(domain),
                # A domain without a limit gets one only while a throttling reply slows it down.
                adaptive_mode="always" if configured else "when_slowed",
            )
        )
        if relay.max_connections:
            limits.append(
                Concurrency(
                    keys.relay_connections(relay.name),
                    connection_slots(relay.max_connections, transactional=transactional),
                    hold_s=CONNECTION_SLOT_HOLD_S,
                )
            )
        return limits

    @contextlib.asynccontextmanager
    async def _permit(
        self,
        relay: RelayConfig,
        domain: str,
        give_up: Callable[[Denial], bool],
        *,
        transactional: bool,
    ) -> AsyncIterator[None]:
        """Hold the permit of one send, or nothing when no limit is known to be in force."""
        now = asyncio.get_running_loop().time()
        unlimited = (relay.name, domain)
        if self._unlimited_until.get(unlimited, 0.0) > now:
            yield
            return
        limits = self.limits_for(relay, domain, transactional=transactional)
        async with self.limiter.acquire(limits, give_up=give_up) as permit:
            if permit.unconstrained:
                if len(self._unlimited_until) >= _UNLIMITED_CACHE_SIZE:
                    self._unlimited_until.clear()
                self._unlimited_until[unlimited] = now + self._unlimited_recheck_s
            yield

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))

    def _unconfigured_outcome(self, names: Sequence[str]) -> SendOutcome:
        # Deferred, not failed: the relay may come back to the config, or another worker's
        # config may have it; past the retry lifetime the job expires and can be retried.
        configured = ", ".join(relay.name for relay in self.config.relays)
        return SendOutcome(
            SendOutcomeKind.DEFERRED,
            None,
            f"not sent: the campaign's relays ({', '.join(names)}) are not configured on "
            f"this worker (configured: {configured})",
            None,
        )

    def _is_open(self, relay: RelayConfig, attempt: _Attempt) -> bool:
        if relay.name in attempt.closed:
            return False
        # Known closed from an earlier message: skip it without a round trip to Redis.
        return self._closed_until.get(relay.name, 0.0) <= asyncio.get_running_loop().time()

    def _weighted_choice(self, relays: list[RelayConfig]) -> RelayConfig:
        if len(relays) == 1:
            return relays[0]
        return self._random.choices(relays, weights=[relay.weight for relay in relays])[0]

    def _give_up_rule(
        self, should_stop: Callable[[], bool], *, can_switch: bool
    ) -> Callable[[Denial], bool]:
        def give_up(denial: Denial) -> bool:
            if should_stop() or isinstance(denial.limit, ClosedWhileSet):
                return True
            long_wait = denial.wait_s is not None and denial.wait_s > SWITCH_RELAY_AFTER_S
            return can_switch and long_wait

        return give_up

    def _note_refusal(self, relay: RelayConfig, denial: Denial, attempt: _Attempt) -> None:
        if isinstance(denial.limit, ClosedWhileSet):
            attempt.closed.add(relay.name)
            until = asyncio.get_running_loop().time() + (
                denial.wait_s or self.config.relay_cooloff_s
            )
            self._closed_until[relay.name] = until
        else:
            attempt.busy.add(relay.name)

    async def _close_relay(self, relay: RelayConfig, failure: SendOutcome) -> None:
        cooloff_s = self.config.relay_cooloff_s
        self._closed_until[relay.name] = asyncio.get_running_loop().time() + cooloff_s
        log.warning("relay %s left out for %.0f s: %s", relay.name, cooloff_s, failure.message)
        try:
            await self.redis.set(
                self.keys.relay_down(relay.name), failure.message, px=round(cooloff_s * 1000)
            )
        except Exception:
            # This process still leaves it out; the others find out for themselves.
            log.warning("could not mark relay %s closed in Redis", relay.name, exc_info=True)

    async def _slow_down(self, domain: str, outcome: SendOutcome) -> None:
        for unlimited in [key for key in self._unlimited_until if key[1] == domain]:
            del self._unlimited_until[unlimited]
        try:
            factor = await self.slowdown.slow_down(self.keys.domain_slowdown(domain))
        except Exception:
            # The message's outcome matters more than the feedback: never lose it over this.
            log.warning("could not slow down %s", domain, exc_info=True)
            return
        log.info(
            "%s throttles (%s): its rate is now %.3g of normal", domain, outcome.message, factor
        )

    def _all_closed_outcome(self, relays: tuple[RelayConfig, ...]) -> SendOutcome:
        names = ", ".join(relay.name for relay in relays)
        return SendOutcome(
            SendOutcomeKind.DEFERRED,
            None,
            f"not sent: every relay is cooling off after failed connections ({names})",
            None,
        )
