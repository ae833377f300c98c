"""Bounce and complaint events of sending providers' webhooks, as :class:`Feedback`.

Amazon SES (through SNS), SendGrid's Event Webhook, Mailgun and Postmark each say the same few
things in their own words; here each becomes a list of :class:`ProviderEvent`. Deliveries,
opens, delays and anything unknown are left out. A payload of the wrong shape gives no events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaigns.bounces.classify import classify_bounce
from campaigns.bounces.policy import Feedback
from campaigns.core.models import EventKind
from campaigns.core.reply_classes import ReplyClass
from campaigns.core.smtp_replies import find_status


@dataclass(frozen=True)
class ProviderEvent:
    feedback: Feedback
    recipient: str
    message_id: str | None
    """Our Message-ID header of the reported message, when the provider passes it on."""


def ses_events(notification: Mapping[str, Any]) -> list[ProviderEvent]:
    """The SES notification inside an SNS message (``Message``, itself JSON)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = _mapping(notification.get("mail"))
    message_id = _mapping(mail.get("commonHeaders")).get("messageId") or _header(
        mail.get("headers"), "Message-ID"
    )
    events = []
    if kind == "Bounce":
        bounce = _mapping(notification.get("bounce"))
        bounce_type = str(bounce.get("bounceType", ""))
        for recipient in _list(bounce.get("bouncedRecipients")):
            recipient = _mapping(recipient)
            status = find_status(str(recipient.get("status") or ""))
            diagnostic = str(recipient.get("diagnosticCode") or "")
            if bounce_type == "Transient":
                bounce_class = ReplyClass.SOFT_BOUNCE
            elif status is None and bounce_type == "Permanent":
                # SES's own word, with no code to read: "remove the address from your list".
                bounce_class = ReplyClass.HARD_BOUNCE
            else:
                bounce_class = classify_bounce(status, diagnostic)
            events.append(
                _event(
                    EventKind.BOUNCED,
                    f"ses:{bounce.get('feedbackId')}",
                    "ses",
                    recipient.get("emailAddress"),
                    message_id,
                    bounce_class=bounce_class,
                    status=status,
                    diagnostic=diagnostic,
                    extra={"ses_type": f"{bounce_type}/{bounce.get('bounceSubType', '')}"},
                )
            )
    elif kind == "Complaint":
        complaint = _mapping(notification.get("complaint"))
        if complaint.get("complaintFeedbackType", "abuse") != "not-spam":
            for recipient in _list(complaint.get("complainedRecipients")):
                events.append(
                    _event(
                        EventKind.COMPLAINED,
                        f"ses:{complaint.get('feedbackId')}",
                        "ses",
                        _mapping(recipient).get("emailAddress"),
                        message_id,
                        extra={"feedback_type": complaint.get("complaintFeedbackType", "")},
                    )
                )
    return [event for event in events if event is not None]


def sendgrid_events(payload: Any) -> list[ProviderEvent]:
    events = []
    for item in _list(payload):
        item = _mapping(item)
        name = item.get("event")
        dedup_key = f"sendgrid:{item.get('sg_event_id') or item.get('sg_message_id')}"
        message_id = item.get("smtp-id")
        if name == "bounce":
            status = find_status(str(item.get("status") or ""))
            reason = str(item.get("reason") or "")
            bounce_class = classify_bounce(status, reason)
            if item.get("type") == "blocked" and bounce_class == ReplyClass.HARD_BOUNCE:
                bounce_class = ReplyClass.SOFT_BOUNCE  # "blocked" is about the sender or the moment
            events.append(
                _event(
                    EventKind.BOUNCED,
                    dedup_key,
                    "sendgrid",
                    item.get("email"),
                    message_id,
                    bounce_class=bounce_class,
                    status=status,
                    diagnostic=reason,
                )
            )
        elif name == "spamreport":
            events.append(
                _event(EventKind.COMPLAINED, dedup_key, "sendgrid", item.get("email"), message_id)
            )
    return [event for event in events if event is not None]


def mailgun_events(payload: Mapping[str, Any]) -> list[ProviderEvent]:
    data = _mapping(payload.get("event-data"))
    name = data.get("event")
    headers = _mapping(_mapping(data.get("message")).get("headers"))
    message_id = headers.get("message-id")
    if message_id and not str(message_id).startswith("<"):
        message_id = f"<{message_id}>"
    dedup_key = f"mailgun:{data.get('id')}"
    if name == "failed" and data.get("severity") == "permanent":
        status_info = _mapping(data.get("delivery-status"))
        text = " ".join(
            str(status_info.get(key) or "") for key in ("code", "message", "description")
        )
        status = find_status(str(status_info.get("enhanced-code") or "")) or find_status(text)
        event = _event(
            EventKind.BOUNCED,
            dedup_key,
            "mailgun",
            data.get("recipient"),
            message_id,
            bounce_class=classify_bounce(status, text),
            status=status,
            diagnostic=" ".join(text.split()),
            extra={"mailgun_reason": data.get("reason", "")},
        )
        return [event] if event else []
    if name == "complained":
        event = _event(
            EventKind.COMPLAINED, dedup_key, "mailgun", data.get("recipient"), message_id
        )
        return [event] if event else []
    return []


POSTMARK_CLASSES = {
    "HardBounce": ReplyClass.HARD_BOUNCE,
    "BadEmailAddress": ReplyClass.HARD_BOUNCE,
    "SoftBounce": ReplyClass.SOFT_BOUNCE,
    "Transient": ReplyClass.SOFT_BOUNCE,
    "DnsError": ReplyClass.SOFT_BOUNCE,
    "Unknown": ReplyClass.SOFT_BOUNCE,
    "Blocked": ReplyClass.POLICY,
    "DMARCPolicy": ReplyClass.POLICY,
}
"""Postmark's bounce types that are bounces; the rest (AutoResponder, Subscribe...) are not."""


def postmark_events(payload: Mapping[str, Any]) -> list[ProviderEvent]:
    record_type = payload.get("RecordType")
    bounce_type = str(payload.get("Type") or "")
    dedup_key = f"postmark:{payload.get('ID')}"
    if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
        event = _event(EventKind.COMPLAINED, dedup_key, "postmark", payload.get("Email"), None)
        return [event] if event else []
    if record_type == "Bounce" and bounce_type in POSTMARK_CLASSES:
        details = str(payload.get("Details") or payload.get("Description") or "")
        event = _event(
            EventKind.BOUNCED,
            dedup_key,
            "postmark",
            payload.get("Email"),
            None,
            bounce_class=POSTMARK_CLASSES[bounce_type],
            status=find_status(details),
            diagnostic=details,
            extra={"postmark_type": bounce_type},
        )
        return [event] if event else []
    return []


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _event(
    kind: EventKind,
    dedup_key: str,
    source: str,
    recipient: Any,
    message_id: Any,
    *,
    bounce_class: ReplyClass | None = None,
    status: str | None = None,
    diagnostic: str = "",
    extra: Mapping[str, Any] | None = None,
) -> ProviderEvent | None:
    if not isinstance(recipient, str) or "@" not in recipient:
        return None
    address = recipient.strip().strip("<>").lower()
    return ProviderEvent(
        feedback=Feedback(
            kind=kind,
            # A provider event about several recipients has one id: each gets its own key.
            dedup_key=f"{dedup_key}:{address}",
            source=source,
            bounce_class=bounce_class,
            status=status,
            diagnostic=diagnostic[:2000],
            reported_recipient=address,
            extra=dict(extra or {}),
        ),
        recipient=address,
        message_id=message_id if isinstance(message_id, str) else None,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _header(headers: Any, name: str) -> str | None:
    for header in _list(headers):
        header = _mapping(header)
        if str(header.get("name", "")).lower() == name.lower():
            value = header.get("value")
            return value if isinstance(value, str) else None
    return None
