"""``edm submit serve``: the SMTP submission server for applications."""

from __future__ import annotations

import argparse
import logging

from redis.asyncio import Redis

from campaigns.core.settings import Settings
from campaigns.transactional.smtp_credentials import SmtpLogin
from edm.command_helpers import database
from workers.embedded_redis import known_redis_url
from workers.rate_limits.limits import Quota
from workers.rate_limits.rate_limiter import Denial, RateLimiter
from workers.rate_limits.redis_limiter import RedisRateLimiter
from workers.receivers.submission_server import (
    RateCheck,
    SubmissionHandler,
    policy_of,
    run_submission_server,
    server_tls_context,
)
from workers.redis_keys import submission_rate_key
from workers.transactional_lane import PUBLISH_TIMEOUT_S, publish_or_leave

RATE_WINDOW_S = 60.0


def credential_rate_check(limiter: RateLimiter, namespace: str) -> RateCheck:
    """A login's ``rate_per_minute`` counted in Redis, so every server process shares it."""

    async def within_rate(login: SmtpLogin) -> bool:
        if login.rate_per_minute is None:
            return True
        quota = Quota(
            key=submission_rate_key(namespace, login.id),
            limit=login.rate_per_minute,
            window_s=RATE_WINDOW_S,
        )
        return not isinstance(await limiter.try_acquire([quota]), Denial)

    return within_rate


def serve(args: argparse.Namespace, settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tls_context = None
    if settings.submit_tls_cert:
        tls_context = server_tls_context(settings.submit_tls_cert, settings.submit_tls_key)
    elif args.implicit_tls_port is not None:
        print("edm submit: --implicit-tls-port needs EDM_SUBMIT_TLS_CERT and EDM_SUBMIT_TLS_KEY")
    elif not settings.submit_auth_on_loopback:
        print("edm submit: no TLS certificate and no loopback AUTH: nobody can sign in")
    db = database(settings)

    def handler() -> SubmissionHandler:
        redis_url = known_redis_url(settings.redis_url, settings.data_dir)
        rate_check = None
        if redis_url:
            redis = Redis.from_url(
                redis_url,
                socket_timeout=PUBLISH_TIMEOUT_S,
                socket_connect_timeout=PUBLISH_TIMEOUT_S,
            )
            rate_check = credential_rate_check(RedisRateLimiter(redis), settings.redis_namespace)
        return SubmissionHandler(
            db,
            settings,
            policy=policy_of(settings),
            publish=lambda job_ids: publish_or_leave(settings, job_ids),
            rate_check=rate_check,
        )

    run_submission_server(
        handler,
        host=args.host,
        port=args.port,
        implicit_tls_port=args.implicit_tls_port,
        tls_context=tls_context,
    )
