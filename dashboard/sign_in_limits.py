"""Failed sign-ins counted per account and per client address in Redis, so passwords cannot be
guessed at speed, whichever dashboard process answers.

Every attempt is counted before its password is checked (one script call), so a burst of
parallel guesses cannot all start before the first failure is recorded; a success takes its
own count back from the address and clears the account's. Once an account or an address has
more than ``EDM_LOGIN_FAILURE_LIMIT`` attempts counted, further ones are refused, even with the
right password, until ``EDM_LOGIN_FAILURE_WINDOW_S`` after its first failure. Accounts that do
not exist are counted alike, so a refusal does not tell which addresses have accounts.

When Redis cannot be reached (or none is known yet) sign-ins go ahead, with a warning in the
log: refusing them would lock everyone out of the dashboard, the place that shows what is wrong
with Redis, whenever it is down or before the first worker started it; a guesser cannot take
Redis down from the sign-in form; and every guess still costs an argon2id verification.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.lists.fields import email_key, normalise_email
from workers.embedded_redis import known_redis_url, redacted_url
from workers.redis_keys import SignInFailureKeys

log = logging.getLogger("edm.dashboard.sign_in")

REDIS_TIMEOUT_S = 2.0

# KEYS: the account's and the address's counters. Returns each count and its time left (ms).
COUNT_ATTEMPT = """
local result = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local left_ms = redis.call('PTTL', key)
  if left_ms < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    left_ms = tonumber(ARGV[1])
  end
  result[2 * i - 1] = count
  result[2 * i] = left_ms
end
return result
"""

# KEYS: the account's and the address's counters.
COUNT_SUCCESS = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DECR', KEYS[2])
end
"""


@dataclass(frozen=True)
class SignInRefused:
    message: str
    retry_after_s: int


class SignInLimiter:
    """Use from any thread; the Redis is ``settings``' (or the published embedded one)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: redis.Redis | None = None
        self._client_url = ""

    def attempt(self, email: str, address: str) -> SignInRefused | None:
        """Count a sign-in attempt; a refusal when the account or the address has had too many."""
        client = self._redis()
        if client is None:
            return None
        keys = self._keys(email, address)
        try:
            account_count, account_left_ms, address_count, address_left_ms = client.eval(
                COUNT_ATTEMPT, len(keys), *keys, round(self._settings.login_failure_window_s * 1000)
            )
        except (redis.RedisError, OSError) as error:
            self._warn_unlimited(error)
            return None
        limit = self._settings.login_failure_limit
        if int(account_count) > limit:
            return _refused("for this account", int(account_left_ms))
        if int(address_count) > limit:
            return _refused("from your network address", int(address_left_ms))
        return None

    def succeeded(self, email: str, address: str) -> None:
        client = self._redis()
        if client is None:
            return
        keys = self._keys(email, address)
        try:
            client.eval(COUNT_SUCCESS, len(keys), *keys)
        except (redis.RedisError, OSError) as error:
            self._warn_unlimited(error)

    def _keys(self, email: str, address: str) -> list[str]:
        keys = SignInFailureKeys(self._settings.redis_namespace)
        try:
            account = email_key(normalise_email(email))
        except InputError:
            account = email.strip().lower()
        # Hashed: the key says nothing about who tried, and its length stays bounded.
        account = hashlib.sha256(account.encode()).hexdigest()
        return [keys.account(account), keys.address(address or "unknown")]

    def _redis(self) -> redis.Redis | None:
        url = known_redis_url(self._settings.redis_url, self._settings.data_dir)
        if not url:
            log.warning(
                "sign-in attempts are not limited: no Redis yet (start a worker or set "
                "EDM_REDIS_URL)"
            )
            return None
        if self._client is None or url != self._client_url:
            self._client = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
            self._client_url = url
        return self._client

    def _warn_unlimited(self, error: BaseException) -> None:
        reason = " ".join(str(error).split()) or type(error).__name__
        log.warning(
            "sign-in attempts are not limited: Redis at %s: %s",
            redacted_url(self._client_url),
            reason,
        )


def _refused(whose: str, left_ms: int) -> SignInRefused:
    left_s = max(1, math.ceil(left_ms / 1000))
    until = (datetime.now(UTC) + timedelta(seconds=left_s)).strftime("%H:%M UTC")
    wait = f"{left_s} seconds" if left_s < 90 else f"{math.ceil(left_s / 60)} minutes"
    return SignInRefused(
        f"Too many failed sign-ins {whose}: try again in {wait} (after {until}).", left_s
    )
