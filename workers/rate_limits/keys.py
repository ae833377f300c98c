"""Every Redis key the limits use, under one namespace per installation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LimitKeys:
    """Key names under ``namespace`` (the queue name, so installations can share a Redis)."""

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
