"""Provider webhooks for bounces and complaints: Amazon SES (through SNS), SendGrid, Mailgun,
Postmark. Mount with ``app.include_router(webhook_router(settings, database))``.

A provider that is not configured answers 404; there is no unsigned mode. A body larger than
``EDM_WEBHOOK_MAX_BYTES`` is refused (413) before it is read whole, and so is a call with more
than :data:`MAX_EVENTS_PER_CALL` events. Every call is authenticated before its events are read,
and signed payloads more than 5 minutes from now, or replayed Mailgun tokens, are refused (403).
Events become :class:`campaigns.bounces.policy.Feedback` recorded by the same intake as mailed
bounces, so a replayed call changes nothing. An accepted call gets the same answer whatever its
events named, so the answer never tells whether an address is on a list. A database failure
answers 500: every one of these providers then delivers the call again.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from campaigns.bounces import providers
from campaigns.bounces.intake import BounceIntake
from campaigns.bounces.sns_certificates import CertificateFetcher, SnsCertificates, is_sns_url
from campaigns.bounces.webhook_auth import (
    SeenTokens,
    mailgun_signature_problem,
    postmark_auth_problem,
    sendgrid_signature_problem,
    sns_signature_problem,
    timestamp_problem,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database

log = logging.getLogger("edm.bounces")

SubscriptionConfirmer = Callable[[str], None]
"""Visits an SNS SubscribeURL (already checked to be on an SNS host)."""

WEBHOOKS_PREFIX = "/webhooks"
MAX_EVENTS_PER_CALL = 1000
"""More events in one call are refused (413); providers batch far fewer."""
RECEIVED = {"detail": "received"}
"""The answer to every accepted call, whatever its events named."""


def webhook_router(
    settings: Settings,
    database: Database,
    *,
    certificate_fetcher: CertificateFetcher | None = None,
    confirm_subscription: SubscriptionConfirmer | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """``POST /webhooks/{ses,sendgrid,mailgun,postmark}``.

    ``certificate_fetcher`` and ``confirm_subscription`` replace the HTTPS requests to SNS
    (tests serve their own certificate from them); ``clock`` gives the time in Unix seconds
    that signed timestamps are compared with.
    """
    handlers = _WebhookHandlers(
        settings=settings,
        intake=BounceIntake.from_settings(settings, database),
        certificates=SnsCertificates(certificate_fetcher),
        mailgun_tokens=SeenTokens(),
        confirm=confirm_subscription or _visit,
        clock=clock,
    )
    router = APIRouter(prefix=WEBHOOKS_PREFIX)
    router.post("/ses")(handlers.ses)
    router.post("/sendgrid")(handlers.sendgrid)
    router.post("/mailgun")(handlers.mailgun)
    router.post("/postmark")(handlers.postmark)
    return router


@dataclass
class _WebhookHandlers:
    """One handler per provider, sharing the intake, the SNS certificates and the Mailgun
    tokens seen lately."""

    settings: Settings
    intake: BounceIntake
    certificates: SnsCertificates
    mailgun_tokens: SeenTokens
    confirm: SubscriptionConfirmer
    clock: Callable[[], float]

    @property
    def max_bytes(self) -> int:
        return self.settings.webhook_max_bytes

    @property
    def topic_arns(self) -> set[str]:
        return {arn.strip() for arn in self.settings.ses_topic_arns.split(",") if arn.strip()}

    async def ses(self, request: Request) -> JSONResponse:
        if not self.topic_arns:
            return _answer(404, "SES webhook not configured (EDM_SES_TOPIC_ARNS)")
        body = await _body(request, self.max_bytes)
        if body is None:
            return _too_large("ses", f"the body is over {self.max_bytes} bytes")
        message = providers.parse_json(body)
        if not isinstance(message, dict):
            return _answer(400, "expected an SNS message")
        problem = await run_in_threadpool(sns_signature_problem, message, self.certificates)
        problem = problem or timestamp_problem(str(message.get("Timestamp", "")), self.clock())
        if problem is not None:
            return _refused("ses", 403, problem)
        if message.get("TopicArn") not in self.topic_arns:
            return _refused("ses", 403, f"topic {message.get('TopicArn')!r} is not configured")
        if message.get("Type") == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL", ""))
            if not is_sns_url(url):
                return _refused("ses", 403, "SubscribeURL is not on an SNS host")
            await run_in_threadpool(self.confirm, url)
            log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
            return _answer(200, "subscribed")
        notification = providers.parse_json(str(message.get("Message", "")).encode())
        if message.get("Type") != "Notification" or not isinstance(notification, dict):
            return JSONResponse(RECEIVED)
        return await _record(self.intake, "ses", providers.ses_events(notification))

    async def sendgrid(self, request: Request) -> JSONResponse:
        key = self.settings.sendgrid_webhook_public_key
        if not key:
            return _answer(404, "SendGrid webhook not configured (EDM_SENDGRID_WEBHOOK_PUBLIC_KEY)")
        body = await _body(request, self.max_bytes)
        if body is None:
            return _too_large("sendgrid", f"the body is over {self.max_bytes} bytes")
        timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        problem = sendgrid_signature_problem(
            key,
            body,
            request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
            timestamp,
        ) or timestamp_problem(timestamp, self.clock())
        if problem is not None:
            return _refused("sendgrid", 403, problem)
        payload = providers.parse_json(body)
        if isinstance(payload, list) and len(payload) > MAX_EVENTS_PER_CALL:
            return _too_many("sendgrid", len(payload))
        return await _record(self.intake, "sendgrid", providers.sendgrid_events(payload))

    async def mailgun(self, request: Request) -> JSONResponse:
        if not self.settings.mailgun_signing_key:
            return _answer(404, "Mailgun webhook not configured (EDM_MAILGUN_SIGNING_KEY)")
        body = await _body(request, self.max_bytes)
        if body is None:
            return _too_large("mailgun", f"the body is over {self.max_bytes} bytes")
        payload = providers.parse_json(body)
        if not isinstance(payload, dict):
            return _answer(400, "expected a Mailgun webhook payload")
        signature = payload.get("signature")
        signature = signature if isinstance(signature, dict) else {}
        timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
        now_s = self.clock()
        problem = mailgun_signature_problem(
            self.settings.mailgun_signing_key, timestamp, token, str(signature.get("signature", ""))
        ) or timestamp_problem(timestamp, now_s)
        if problem is None and not self.mailgun_tokens.first_use(token, now_s):
            problem = "the token was used before (a replayed call)"
        if problem is not None:
            return _refused("mailgun", 403, problem)
        return await _record(self.intake, "mailgun", providers.mailgun_events(payload))

    async def postmark(self, request: Request) -> JSONResponse:
        if not (self.settings.postmark_webhook_auth or self.settings.postmark_webhook_token):
            return _answer(404, "Postmark webhook not configured (EDM_POSTMARK_WEBHOOK_*)")
        problem = postmark_auth_problem(
            basic_auth=self.settings.postmark_webhook_auth,
            token=self.settings.postmark_webhook_token,
            authorization=request.headers.get("Authorization", ""),
            given_token=request.query_params.get("token", ""),
        )
        if problem is not None:
            return _refused("postmark", 401, problem)
        body = await _body(request, self.max_bytes)
        if body is None:
            return _too_large("postmark", f"the body is over {self.max_bytes} bytes")
        payload = providers.parse_json(body)
        if not isinstance(payload, dict):
            return _answer(400, "expected a Postmark webhook payload")
        return await _record(self.intake, "postmark", providers.postmark_events(payload))


async def _body(request: Request, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it is known to be over ``max_bytes`` (it is never held
    whole then)."""
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _record(
    intake: BounceIntake, provider: str, events: Sequence[providers.ProviderEvent]
) -> JSONResponse:
    if len(events) > MAX_EVENTS_PER_CALL:
        return _too_many(provider, len(events))

    def record() -> Counter[str]:
        return Counter(
            str(
                intake.receive_feedback(
                    event.feedback, recipient=event.recipient, message_id=event.message_id
                ).outcome
            )
            for event in events
        )

    outcomes = await run_in_threadpool(record)
    if outcomes:
        log.info("%s webhook call: %s", provider, dict(outcomes))
    return JSONResponse(RECEIVED)


def _answer(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _refused(provider: str, status: int, reason: str) -> JSONResponse:
    log.warning("%s webhook call refused: %s", provider, reason)
    return _answer(status, f"refused: {reason}")


def _too_large(provider: str, reason: str) -> JSONResponse:
    return _refused(provider, 413, reason)


def _too_many(provider: str, count: int) -> JSONResponse:
    return _refused(provider, 413, f"{count} events, more than {MAX_EVENTS_PER_CALL} in one call")


def _visit(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read(64 * 1024)
