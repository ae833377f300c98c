"""Which relays to send through and within which limits, read from the settings.

The config file's ``[[relays]]``, ``[domain_limits]`` and ``[adaptive]`` tables arrive in
``Settings.extra``; without ``[[relays]]`` the one relay is ``EDM_SMTP_URL``. ``EDM_SEND_RATE``
caps all sending together, whichever relay it goes through. Which relays a campaign may use is
stored with the campaign (chosen when it is created), not here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from campaigns.core.errors import ConfigError
from campaigns.core.settings import Settings
from workers.rate_limits import AdaptivePolicy, default_burst
from workers.smtp.url import SmtpRelay, parse_smtp_url

ANY_OTHER_DOMAIN = "*"


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """One relay and its limits; 0 means no limit. Rates in messages per second."""

    name: str
    relay: SmtpRelay
    weight: float = 1.0
    """Share of the messages, relative to the other relays of the campaign."""
    per_second: float = 0.0
    per_hour: int = 0
    per_day: int = 0
    """Rolling windows: no hour (day) ever holds more, wherever it starts."""
    max_connections: int = 0
    """Messages in flight at once, across every worker (idle pooled connections not counted)."""
    burst: int = 0
    """How many of ``per_second`` may go back to back; 0 means a tenth of a second's worth."""

    @property
    def per_second_burst(self) -> int:
        return self.burst or default_burst(self.per_second)


@dataclass(frozen=True, kw_only=True)
class RelaySetConfig:
    relays: tuple[RelayConfig, ...]
    send_rate: float = 0.0
    """All messages together, per second; 0 means no limit."""
    domain_limits: Mapping[str, float] = field(default_factory=dict)
    """Messages per second per recipient domain, across relays and workers."""
    adaptive: AdaptivePolicy = field(default_factory=AdaptivePolicy)
    relay_cooloff_s: float = 30.0
    namespace: str = "edm-delivery"

    def domain_rate(self, domain: str) -> float:
        """The configured rate of ``domain``, 0 for none."""
        return self.domain_limits.get(domain, self.domain_limits.get(ANY_OTHER_DOMAIN, 0.0))

    def relays_named(self, names: Sequence[str] | None) -> tuple[RelayConfig, ...]:
        """The configured relays among ``names`` (a campaign's choice); None means all."""
        if names is None:
            return self.relays
        return tuple(relay for relay in self.relays if relay.name in names)


def load_relay_config(settings: Settings) -> RelaySetConfig:
    """The relays and limits ``settings`` describe; ConfigError naming the bad entry if any."""
    extra = settings.extra
    if "campaign_relays" in extra:
        raise ConfigError(
            "config [campaign_relays]: no longer read; a campaign's relays are chosen when it is "
            "created (edm campaigns create --relay NAME): remove the table"
        )
    send_rate = _non_negative("EDM_SEND_RATE", settings.send_rate)
    relays = _relays(extra.get("relays"), settings)
    return RelaySetConfig(
        relays=relays,
        send_rate=send_rate,
        domain_limits=_domain_limits(extra.get("domain_limits", {})),
        adaptive=_adaptive(extra.get("adaptive", {})),
        relay_cooloff_s=_positive("EDM_RELAY_COOLOFF_S", settings.relay_cooloff_s),
        namespace=settings.redis_namespace,
    )


def relay_names(settings: Settings) -> list[str]:
    """Names of the configured relays, which a campaign chooses from; ConfigError if unreadable."""
    return [relay.name for relay in load_relay_config(settings).relays]


def _relays(tables: Any, settings: Settings) -> tuple[RelayConfig, ...]:
    if tables is None:
        relay = parse_smtp_url(settings.smtp_url)
        return (RelayConfig(name=_default_name(relay), relay=relay),)
    if not isinstance(tables, list) or not tables:
        raise ConfigError("config [[relays]]: expected one or more [[relays]] tables")
    relays: list[RelayConfig] = []
    for number, table in enumerate(tables, start=1):
        where = f"config [[relays]] #{number}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table")
        relays.append(_relay(table, where))
    seen: set[str] = set()
    for relay_config in relays:
        if relay_config.name in seen:
            raise ConfigError(f"config [[relays]]: two relays are named {relay_config.name!r}")
        seen.add(relay_config.name)
    return tuple(relays)


def _relay(table: dict[str, Any], where: str) -> RelayConfig:
    allowed = {f.name for f in fields(RelayConfig)} - {"relay"} | {"url"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(allowed))}"
        )
    if "url" not in table:
        raise ConfigError(f"{where}: url is required")
    try:
        relay = parse_smtp_url(str(table["url"]))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    name = str(table.get("name") or _default_name(relay))
    where = f"{where} ({name})"
    weight = _positive(f"{where}: weight", table.get("weight", 1.0))
    return RelayConfig(
        name=name,
        relay=relay,
        weight=weight,
        per_second=_non_negative(f"{where}: per_second", table.get("per_second", 0.0)),
        per_hour=_count(f"{where}: per_hour", table.get("per_hour", 0)),
        per_day=_count(f"{where}: per_day", table.get("per_day", 0)),
        max_connections=_count(f"{where}: max_connections", table.get("max_connections", 0)),
        burst=_count(f"{where}: burst", table.get("burst", 0)),
    )


def _domain_limits(table: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        raise ConfigError(
            "config [domain_limits]: expected a table of domain = messages per second"
        )
    limits: dict[str, float] = {}
    for domain, rate in table.items():
        key = str(domain).strip().lower()
        limits[key] = _positive(f"config [domain_limits] {domain!r}", rate)
    return limits


def _adaptive(table: Any) -> AdaptivePolicy:
    if not isinstance(table, dict):
        raise ConfigError("config [adaptive]: expected a table")
    known = {f.name for f in fields(AdaptivePolicy)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"config [adaptive]: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    values = {
        name: _non_negative(f"config [adaptive] {name}", value) for name, value in table.items()
    }
    try:
        return AdaptivePolicy(**values)
    except ValueError as error:
        raise ConfigError(f"config [adaptive]: {error}") from None


def _default_name(relay: SmtpRelay) -> str:
    return f"{relay.host}:{relay.port}"


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return number


def _non_negative(where: str, value: Any) -> float:
    number = _number(where, value)
    if number < 0:
        raise ConfigError(f"{where}: cannot be negative, got {value!r}")
    return number


def _positive(where: str, value: Any) -> float:
    number = _number(where, value)
    if number <= 0:
        raise ConfigError(f"{where}: must be greater than 0, got {value!r}")
    return number


def _count(where: str, value: Any) -> int:
    number = _non_negative(where, value)
    if number != int(number):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    return int(number)
