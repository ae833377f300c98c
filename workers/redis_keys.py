"""Every Redis key the project names, under one namespace per installation.

The namespace is ``Settings.redis_namespace`` (the Celery queue name unless set apart), so
two installations can share one Redis. These strings are state a running installation keeps
(limits, quotas, counters, a lock): changing one forgets that state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


def delivery_queue_key(queue_name: str) -> str:
    """The list Celery's Redis transport keeps a queue's waiting messages in."""
    return queue_name


def delivery_queue_key_patterns(queue_name: str) -> tuple[str, ...]:
    """Every key Celery's Redis transport keeps for a queue besides its list: the binding set
    and the sibling lists it keeps priorities in ("<queue>\\x06\\x16N")."""
    return (f"_kombu.binding.{queue_name}", f"{queue_name}\x06\x16*")


def namespace_pattern(namespace: str) -> str:
    """Matches every key below the namespace (limits, counters, the lock, sign-in failures)."""
    return f"{namespace}:*"


def dispatcher_lock_key(namespace: str) -> str:
    """Held by the one dispatcher that runs, whatever the number of hosts."""
    return f"{namespace}:dispatcher-lock"


@dataclass(frozen=True)
class SignInFailureKeys:
    """Failed dashboard sign-ins, counted per account and per client address."""

    namespace: str

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:sign-in-failures"

    def account(self, account_hash: str) -> str:
        return f"{self.prefix}:account:{account_hash}"

    def address(self, address: str) -> str:
        return f"{self.prefix}:address:{address}"


@dataclass(frozen=True)
class SendRateKeys:
    """Messages sent per relay and per domain, in buckets numbered by their start time."""

    namespace: str

    def relays(self, bucket: int) -> str:
        return f"{self.namespace}:sent:relays:{bucket}"

    def domains(self, bucket: int) -> str:
        return f"{self.namespace}:sent:domains:{bucket}"

    def scratch(self) -> str:
        return f"{self.namespace}:sent:union:{uuid.uuid4().hex}"


@dataclass(frozen=True)
class LimitKeys:
    """The global limits: rates, quotas, connection slots, closed relays, domain slow-downs."""

    namespace: str

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:limits"

    def send_rate(self) -> str:
        return f"{self.prefix}:all:rate"

    def relay_rate(self, relay: str) -> str:
        return f"{self.prefix}:relay:{relay}:rate"

    def relay_quota(self, relay: str, window: str) -> str:
        return f"{self.prefix}:relay:{relay}:{window}"

    def relay_connections(self, relay: str) -> str:
        return f"{self.prefix}:relay:{relay}:connections"

    def relay_down(self, relay: str) -> str:
        return f"{self.prefix}:relay:{relay}:down"

    def domain_rate(self, domain: str) -> str:
        return f"{self.prefix}:domain:{domain}:rate"

    def domain_slowdown(self, domain: str) -> str:
        return f"{self.prefix}:domain:{domain}:slowdown"

    def domain_slowdown_pattern(self) -> str:
        return f"{self.prefix}:domain:*:slowdown"

    def domain_of_slowdown_key(self, key: str) -> str:
        return key.removeprefix(f"{self.prefix}:domain:").removesuffix(":slowdown")


def submission_rate_key(namespace: str, credential_id: int) -> str:
    """Recipients an SMTP submission credential had accepted, counted over the last minute."""
    return f"{namespace}:submission:credential:{credential_id}:rate"


def tracking_events_key(namespace: str) -> str:
    """The stream of answered opens and clicks not yet written to the database."""
    return f"{namespace}:tracking-events"


def transactional_pending_key(namespace: str) -> str:
    """The list of transactional job ids published and not yet taken by a lane task."""
    return f"{namespace}:tx-pending"


def transactional_wake_key(namespace: str) -> str:
    """Set while a task to take the pending transactional jobs is queued: one at a time."""
    return f"{namespace}:tx-wake"
