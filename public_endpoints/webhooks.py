"""Provider webhooks for bounces and complaints: Amazon SES (through SNS), SendGrid, Mailgun,
Postmark. Mount with ``app.include_router(webhook_router(settings, database))``.

Every call is authenticated before anything is read from it (a provider that is not configured
answers 404). Events become :class:`campaigns.bounces.policy.Feedback` recorded by the same
intake as mailed bounces, so a replayed call changes nothing. A database failure answers 500:
every one of these providers then delivers the call again.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from campaigns.bounces import providers
from campaigns.bounces.intake import BounceIntake
from campaigns.bounces.webhook_auth import (
    CachedCertificates,
    CertificateFetcher,
    is_sns_url,
    mailgun_signature_problem,
    postmark_auth_problem,
    sendgrid_signature_problem,
    sns_signature_problem,
)
from campaigns.core.settings import Settings
from campaigns.core.storage import Database

log = logging.getLogger("edm.bounces")

SubscriptionConfirmer = Callable[[str], None]
"""Visits an SNS SubscribeURL (already checked to be on an SNS host)."""


def webhook_router(
    settings: Settings,
    database: Database,
    *,
    certificate_fetcher: CertificateFetcher | None = None,
    confirm_subscription: SubscriptionConfirmer | None = None,
) -> APIRouter:
    """``POST /webhooks/{ses,sendgrid,mailgun,postmark}``.

    ``certificate_fetcher`` and ``confirm_subscription`` replace the HTTPS requests to SNS
    (tests serve their own certificate from them).
    """
    intake = BounceIntake.from_settings(settings, database)
    certificates = CachedCertificates(certificate_fetcher)
    confirm = confirm_subscription or _visit
    topic_arns = {arn.strip() for arn in settings.ses_topic_arns.split(",") if arn.strip()}
    router = APIRouter(prefix="/webhooks")
    _add_ses_route(router, intake, topic_arns, certificates, confirm)
    _add_sendgrid_route(router, intake, settings)
    _add_mailgun_route(router, intake, settings)
    _add_postmark_route(router, intake, settings)
    return router


def _add_ses_route(
    router: APIRouter,
    intake: BounceIntake,
    topic_arns: set[str],
    certificates: CachedCertificates,
    confirm: SubscriptionConfirmer,
) -> None:
    @router.post("/ses")
    async def ses(request: Request) -> JSONResponse:
        if not topic_arns:
            return _answer(404, "SES webhook not configured (EDM_SES_TOPIC_ARNS)")
        message = providers.parse_json(await request.body())
        if not isinstance(message, dict):
            return _answer(400, "expected an SNS message")
        problem = await run_in_threadpool(sns_signature_problem, message, certificates)
        if problem is not None:
            return _refused("ses", 403, problem)
        if message.get("TopicArn") not in topic_arns:
            return _refused("ses", 403, f"topic {message.get('TopicArn')!r} is not configured")
        if message.get("Type") == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL", ""))
            if not is_sns_url(url):
                return _refused("ses", 403, "SubscribeURL is not on an SNS host")
            await run_in_threadpool(confirm, url)
            log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
            return _answer(200, "subscribed")
        if message.get("Type") != "Notification":
            return _answer(200, "ignored")
        notification = providers.parse_json(str(message.get("Message", "")).encode())
        if not isinstance(notification, dict):
            return _answer(200, "ignored: no SES notification inside")
        return await _record(intake, providers.ses_events(notification), authenticated=True)


def _add_sendgrid_route(router: APIRouter, intake: BounceIntake, settings: Settings) -> None:
    @router.post("/sendgrid")
    async def sendgrid(request: Request) -> JSONResponse:
        body = await request.body()
        key = settings.sendgrid_webhook_public_key
        if key:
            problem = sendgrid_signature_problem(
                key,
                body,
                request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
                request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", ""),
            )
            if problem is not None:
                return _refused("sendgrid", 403, problem)
        events = providers.sendgrid_events(providers.parse_json(body))
        return await _record(intake, events, authenticated=bool(key))


def _add_mailgun_route(router: APIRouter, intake: BounceIntake, settings: Settings) -> None:
    @router.post("/mailgun")
    async def mailgun(request: Request) -> JSONResponse:
        if not settings.mailgun_signing_key:
            return _answer(404, "Mailgun webhook not configured (EDM_MAILGUN_SIGNING_KEY)")
        payload = providers.parse_json(await request.body())
        if not isinstance(payload, dict):
            return _answer(400, "expected a Mailgun webhook payload")
        signature = payload.get("signature")
        signature = signature if isinstance(signature, dict) else {}
        problem = mailgun_signature_problem(
            settings.mailgun_signing_key,
            str(signature.get("timestamp", "")),
            str(signature.get("token", "")),
            str(signature.get("signature", "")),
        )
        if problem is not None:
            return _refused("mailgun", 403, problem)
        return await _record(intake, providers.mailgun_events(payload), authenticated=True)


def _add_postmark_route(router: APIRouter, intake: BounceIntake, settings: Settings) -> None:
    @router.post("/postmark")
    async def postmark(request: Request) -> JSONResponse:
        if not (settings.postmark_webhook_auth or settings.postmark_webhook_token):
            return _answer(404, "Postmark webhook not configured (EDM_POSTMARK_WEBHOOK_*)")
        problem = postmark_auth_problem(
            basic_auth=settings.postmark_webhook_auth,
            token=settings.postmark_webhook_token,
            authorization=request.headers.get("Authorization", ""),
            given_token=request.query_params.get("token", ""),
        )
        if problem is not None:
            return _refused("postmark", 401, problem)
        payload = providers.parse_json(await request.body())
        if not isinstance(payload, dict):
            return _answer(400, "expected a Postmark webhook payload")
        return await _record(intake, providers.postmark_events(payload), authenticated=True)


async def _record(
    intake: BounceIntake, events: Sequence[providers.ProviderEvent], *, authenticated: bool
) -> JSONResponse:
    def record() -> list[str]:
        return [
            str(
                intake.receive_feedback(
                    event.feedback,
                    recipient=event.recipient,
                    message_id=event.message_id,
                    authenticated=authenticated,
                ).outcome
            )
            for event in events
        ]

    outcomes = await run_in_threadpool(record)
    return JSONResponse({"outcomes": outcomes})


def _answer(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _refused(provider: str, status: int, reason: str) -> JSONResponse:
    log.warning("%s webhook call refused: %s", provider, reason)
    return _answer(status, f"refused: {reason}")


def _visit(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read(64 * 1024)
