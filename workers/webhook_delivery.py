"""POSTs delivery events from the webhook outbox to their endpoints, forever.

Started by ``edm worker`` as a child process (or alone with ``python -m workers.webhook_delivery``).
Several may run, on any hosts: each endpoint is leased to one of them at a time
(``campaigns.webhooks.outbox``), which keeps its events in order.

What goes out is an envelope, ``{"events": [...]}``, with up to ``EDM_OUTGOING_WEBHOOK_BATCH_SIZE``
events, oldest first, signed as ``campaigns.webhooks.signing`` says. Any 2xx answer delivers the
whole batch; anything else (another status, a timeout, a refused connection, a destination that
resolves to a private address) fails it whole and the endpoint backs off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from campaigns.core.errors import InputError
from campaigns.core.models import utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.webhooks.backoff import RetrySchedule
from campaigns.webhooks.destinations import check_destination
from campaigns.webhooks.endpoints import endpoint_secret
from campaigns.webhooks.outbox import (
    Attempt,
    DueEndpoint,
    PendingBatch,
    lease_due_endpoint,
    next_batch,
    record_delivered,
    record_failed,
    release_lease,
)
from campaigns.webhooks.signing import signed_headers
from workers.child_processes import stop_event_on_signals

log = logging.getLogger("edm.webhooks")

RESPONSE_BYTES_READ = 4096
"""Of a receiver's answer only this much is read (for the log); the rest is never downloaded."""
USER_AGENT = "edm-webhooks/1"


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    response_ms: int
    error: str | None
    response_excerpt: bytes = b""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def make_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(settings.outgoing_webhook_timeout_s),
        # A redirect would take the signed events to a URL nobody checked.
        follow_redirects=False,
        # Identity: an answer is read only in part, and a compressed one would grow as it is.
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        # Proxies from the environment would see every event; the receiver's URL is explicit.
        trust_env=False,
    )


def post_signed(
    client: httpx.Client,
    url: str,
    secret: str,
    payload: Any,
    *,
    timestamp: int,
    allow_private: bool,
    timeout_s: float,
) -> PostResult:
    """POST ``payload`` as signed JSON and read at most ``RESPONSE_BYTES_READ`` of the answer."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_destination(url, allow_private=allow_private)
        with client.stream(
            "POST", url, content=body, headers=signed_headers(secret, timestamp, body)
        ) as response:
            excerpt = _bounded_read(response, started + timeout_s)
            return PostResult(response.status_code, elapsed_ms(), None, excerpt)
    except InputError as error:
        return PostResult(None, elapsed_ms(), str(error))
    except httpx.HTTPError as error:
        return PostResult(None, elapsed_ms(), f"{type(error).__name__}: {error}"[:300])


def _bounded_read(response: httpx.Response, deadline: float) -> bytes:
    """The start of the body; stops at ``RESPONSE_BYTES_READ`` or the deadline, whichever first
    (a receiver that drips its answer must not hold the deliverer)."""
    excerpt = b""
    for chunk in response.iter_bytes(1024):
        excerpt += chunk
        if len(excerpt) >= RESPONSE_BYTES_READ or time.monotonic() > deadline:
            break
    return excerpt[:RESPONSE_BYTES_READ]


def send_test_event(database: Database, settings: Settings, endpoint_id: int) -> PostResult:
    """POST one signed event of type ``test`` to the endpoint now, outside the outbox (what
    ``edm webhooks test`` and the dashboard's button do)."""
    url, secret = endpoint_secret(database, endpoint_id)
    now = utc_now()
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": "test",
        "timestamp": now.isoformat(),
        "message_id": None,
        "job_id": None,
        "campaign_id": None,
        "category": None,
        "recipient": None,
        "details": {},
    }
    with make_client(settings) as client:
        return post_signed(
            client,
            url,
            secret,
            {"events": [event]},
            timestamp=int(now.timestamp()),
            allow_private=settings.outgoing_webhook_allow_private,
            timeout_s=settings.outgoing_webhook_timeout_s,
        )


def retry_schedule(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        first_delay_s=settings.outgoing_webhook_retry_first_s,
        max_delay_s=settings.outgoing_webhook_retry_max_s,
        pause_after_s=settings.outgoing_webhook_pause_after_s,
    )


class WebhookDeliverer:
    """Delivers one batch of one due endpoint per ``deliver_once``."""

    def __init__(
        self,
        database: Database,
        client: httpx.Client,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.client = client
        self.settings = settings
        self.schedule = retry_schedule(settings)
        self.clock = clock
        # Past the longest POST, so a lease runs out only when its holder died.
        self.lease_s = 4 * settings.outgoing_webhook_timeout_s + 30

    def deliver_once(self) -> int | None:
        """Events delivered to one due endpoint (0 when a POST failed); None when no endpoint
        had any due. While its batches are full and accepted, the endpoint is kept for more, up
        to half its lease."""
        leased_at = self.clock()
        endpoint = lease_due_endpoint(self.database, now=leased_at, lease_s=self.lease_s)
        if endpoint is None:
            return None
        keep_until = leased_at + timedelta(seconds=self.lease_s / 2)
        batch_size = self.settings.outgoing_webhook_batch_size
        delivered = 0
        while True:
            batch = next_batch(self.database, endpoint.id, limit=batch_size)
            if not batch.outbox_ids:
                release_lease(self.database, endpoint.id)
                return delivered
            if not self._post_batch(endpoint, batch):
                return delivered
            delivered += len(batch.outbox_ids)
            if len(batch.outbox_ids) < batch_size or self.clock() >= keep_until:
                release_lease(self.database, endpoint.id)
                return delivered

    def _post_batch(self, endpoint: DueEndpoint, batch: PendingBatch) -> bool:
        """POST one batch and record the outcome; True when the receiver accepted it (a failure
        gives the lease back with the endpoint's next attempt time)."""
        attempted_at = self.clock()
        result = post_signed(
            self.client,
            endpoint.url,
            endpoint.secret,
            {"events": batch.events},
            timestamp=int(attempted_at.timestamp()),
            allow_private=self.settings.outgoing_webhook_allow_private,
            timeout_s=self.settings.outgoing_webhook_timeout_s,
        )
        error = result.error
        if error is None and not result.delivered:
            error = f"HTTP {result.status_code}"
        attempt = Attempt(
            attempted_at=attempted_at,
            events=len(batch.outbox_ids),
            status_code=result.status_code,
            response_ms=result.response_ms,
            error=None if result.delivered else error,
        )
        if result.delivered:
            record_delivered(self.database, endpoint.id, batch.outbox_ids, attempt)
            return True
        paused = record_failed(
            self.database, endpoint.id, batch.outbox_ids, attempt, schedule=self.schedule
        )
        log.warning(
            "webhook endpoint %s: %s (%d events)%s",
            endpoint.id,
            error,
            len(batch.outbox_ids),
            "; paused after failing every attempt" if paused else "",
        )
        return False


def run_webhook_delivery(settings: Settings, stop: threading.Event) -> None:
    database = Database(settings.resolved_database_url)
    with make_client(settings) as client:
        deliverer = WebhookDeliverer(database, client, settings)
        while not stop.is_set():
            try:
                delivered = deliverer.deliver_once()
            except Exception:
                # The database restarting is survivable: the outbox still holds every event.
                log.exception("webhook delivery pass failed; retrying")
                delivered = None
            if delivered is None:
                stop.wait(settings.outgoing_webhook_interval_s)
    database.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = stop_event_on_signals()
    log.info("webhook delivery started")
    run_webhook_delivery(Settings.from_env(), stop)


if __name__ == "__main__":
    main()
