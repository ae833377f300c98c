"""Failed sign-ins limited in Redis, whichever dashboard process answers: per client address
a count, per account a growing wait, so that a stranger can slow guesses at an account down
but never lock its owner out.

- **Per address**: more than ``EDM_LOGIN_FAILURE_LIMIT`` attempts within
  ``EDM_LOGIN_FAILURE_WINDOW_S`` close that address (for every account) until the window ends.
- **Per account**: after ``EDM_LOGIN_DELAY_AFTER_FAILURES`` failures, each further attempt must
  come ``EDM_LOGIN_DELAY_FIRST_S`` after the one before, doubling with each failure up to
  ``EDM_LOGIN_DELAY_MAX_S``. An attempt made after its wait is checked as usual: the right
  password signs in and clears the account's count. An attempt made too early is refused without
  checking the password and without counting against the address, so an owner who retries too
  soon does not close their own address.

Every admitted attempt is counted as a failure before its password is checked (one script call),
so a burst of parallel guesses cannot all start before the first failure is recorded; a success
takes its own count back from the address and clears the account's. Accounts that do not exist
are counted alike, so a refusal does not tell which addresses have accounts. Time comes from the
limiter's ``clock`` (seconds since the epoch), so tests move it instead of sleeping.

When Redis cannot be reached (or none is known yet) sign-ins go ahead, with a warning in the
log: refusing them would lock everyone out of the dashboard, the place that shows what is wrong
with Redis, whenever it is down or before the first worker started it; a guesser cannot take
Redis down from the sign-in form; and every guess still costs an argon2id verification.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from campaigns.lists.fields import email_key, normalise_email
from workers.embedded_redis import known_redis_url, redacted_url
from workers.rate_limits.scripts import read_script
from workers.redis_keys import SignInFailureKeys

log = logging.getLogger("edm.dashboard.sign_in")

REDIS_TIMEOUT_S = 2.0

COUNT_ATTEMPT = read_script("sign_in_attempt.lua")

COUNT_SUCCESS = read_script("sign_in_success.lua")
ADMITTED, ADDRESS_CLOSED, ACCOUNT_WAITS = 0, 1, 2


@dataclass(frozen=True)
class SignInRefused:
    message: str
    retry_after_s: int


class SignInLimiter:
    """Use from any thread; the Redis is ``settings``' (or the published embedded one)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._client: redis.Redis | None = None
        self._client_url = ""

    def attempt(self, email: str, address: str) -> SignInRefused | None:
        """Count a sign-in attempt; a refusal when the address is closed or the account must
        wait."""
        client = self._redis()
        if client is None:
            return None
        keys = self._keys(email, address)
        settings = self._settings
        now_s = self._clock()
        try:
            outcome, left_ms = client.eval(
                COUNT_ATTEMPT,
                len(keys),
                *keys,
                round(now_s * 1000),
                settings.login_failure_limit,
                round(settings.login_failure_window_s * 1000),
                settings.login_delay_after_failures,
                round(settings.login_delay_first_s * 1000),
                round(settings.login_delay_max_s * 1000),
            )
        except (redis.RedisError, OSError) as error:
            self._warn_unlimited(error)
            return None
        if int(outcome) == ADDRESS_CLOSED:
            return _refused("from your network address", int(left_ms), now_s)
        if int(outcome) == ACCOUNT_WAITS:
            return _refused("for this account", int(left_ms), now_s)
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


def _refused(whose: str, left_ms: int, now_s: float) -> SignInRefused:
    left_s = max(1, math.ceil(left_ms / 1000))
    until = datetime.fromtimestamp(now_s + left_s, UTC).strftime("%H:%M:%S UTC")
    wait = f"{left_s} seconds" if left_s < 90 else f"{math.ceil(left_s / 60)} minutes"
    return SignInRefused(
        f"Too many failed sign-ins {whose}: try again in {wait} (after {until}).", left_s
    )
