"""How bad a bounce is, from its RFC 3463 enhanced status code, or from its text when it has none.

The classes and code lists are the ones delivery uses for refusals during the SMTP dialogue
(:mod:`campaigns.core.reply_classes`), so a recipient is judged the same whether the relay refused
at once or sent a DSN hours later. A bounce is always one of ``ReplyClass.HARD_BOUNCE``,
``SOFT_BOUNCE`` or ``POLICY``.
"""

from __future__ import annotations

import re

from campaigns.core.reply_classes import HARD_BOUNCE_STATUSES, ReplyClass
from campaigns.core.smtp_replies import find_smtp_code, find_status

# Only wordings that leave no doubt: a wrong hard bounce suppresses a real person for good.
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such user|no such mailbox|unknown recipient"
    r"|no mailbox here by that name|this user doesn't have an? [\w.-]+ account"
    r"|recipient not found by smtp address lookup",
    re.IGNORECASE,
)


def says_unknown_user(text: str) -> bool:
    return bool(_UNKNOWN_USER.search(text or ""))


def classify_bounce(status: str | None, diagnostic: str = "") -> ReplyClass:
    """The class of a failed delivery from its enhanced status code and its diagnostic text.

    A generic status (x.0.0) or none at all is read from the diagnostic: its own enhanced code
    when it has one, else "user unknown"-style wording for a permanent failure; else soft.
    """
    given = find_status(status or "")
    specific = next(
        (code for code in (given, find_status(diagnostic)) if code and not code.endswith(".0.0")),
        None,
    )
    if specific is None:
        temporary = (given or "").startswith("4.") or _smtp_class(diagnostic) == 4
        if not temporary and says_unknown_user(diagnostic):
            return ReplyClass.HARD_BOUNCE
        return ReplyClass.SOFT_BOUNCE
    if specific in HARD_BOUNCE_STATUSES:
        return ReplyClass.HARD_BOUNCE
    if specific.startswith("5.7."):
        return ReplyClass.POLICY
    # 4.x.x, the soft list, and other permanent codes whose cause is not the address itself.
    return ReplyClass.SOFT_BOUNCE


def _smtp_class(diagnostic: str) -> int | None:
    code = find_smtp_code(diagnostic)
    return code // 100 if code else None
