"""Out-of-office and other automatic replies: they reach the return path but are not bounces."""

from __future__ import annotations

import re
from email.message import Message

from campaigns.bounces.mail_parts import header_text

_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autoresponse")
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:\[?auto(?:matic)?[- ]?(?:reply|response|antwort)\]?|out of (?:the )?office"
    r"|auto:|autosvar|abwesenheit|absent|absence|away from|on vacation|vacation reply"
    r"|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|fuera de la oficina)",
    re.IGNORECASE,
)


def auto_reply_marker(message: Message) -> str | None:
    """What marks the message as an automatic reply beyond doubt, or None."""
    for name in _AUTO_REPLY_HEADERS:
        if message.get(name) is not None:
            return name
    if header_text(message, "Precedence").lower() == "auto_reply":
        return "Precedence: auto_reply"
    if message.get("X-MS-Exchange-Inbox-Rules-Loop") is not None:
        return "X-MS-Exchange-Inbox-Rules-Loop"
    if _AUTO_REPLY_SUBJECT.search(header_text(message, "Subject")):
        return "Subject"
    return None


def is_auto_submitted(message: Message) -> bool:
    """RFC 3834: anything but ``no`` was sent by a program (bounces from some MTAs too)."""
    value = header_text(message, "Auto-Submitted").lower()
    return bool(value) and value != "no"
