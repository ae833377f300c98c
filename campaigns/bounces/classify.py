"""How bad a bounce is, from its RFC 3463 enhanced status code, or from its text when it has none.

The code lists are the ones delivery uses for refusals during the SMTP dialogue
(:mod:`campaigns.core.reply_classes`), so a recipient is judged the same whether the relay refused
at once or sent a DSN hours later.
"""

from __future__ import annotations

import enum
import re

from campaigns.core.reply_classes import HARD_BOUNCE_STATUSES


class BounceClass(enum.StrEnum):
    HARD = "hard"
    """The address does not exist: suppressed at once."""
    SOFT = "soft"
    """Full mailbox, temporary trouble, or a reason too unclear to call hard: suppressed only
    after several within a few days."""
    POLICY = "policy"
    """5.7.x: refused for the sender's reasons (reputation, authentication); the address is fine."""


_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?<!\d)([245]\d\d)(?:[ -]|$)")
# Only wordings that leave no doubt: a wrong hard bounce suppresses a real person for good.
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such user|no such mailbox|unknown recipient"
    r"|no mailbox here by that name|this user doesn't have an? [\w.-]+ account"
    r"|recipient not found by smtp address lookup",
    re.IGNORECASE,
)


def find_status(text: str) -> str | None:
    """The first enhanced status code in ``text`` ("5.1.1" in "smtp; 550 5.1.1 <a@b>: ...")."""
    match = _STATUS.search(text or "")
    if match is None:
        return None
    return ".".join(str(int(part)) for part in match.groups())


def find_smtp_code(text: str) -> int | None:
    """The first three-digit SMTP reply code in a diagnostic ("smtp; 550 ..." gives 550)."""
    match = _SMTP_CODE.search(text or "")
    return int(match.group(1)) if match else None


def says_unknown_user(text: str) -> bool:
    return bool(_UNKNOWN_USER.search(text or ""))


def classify_bounce(status: str | None, diagnostic: str = "") -> BounceClass:
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
            return BounceClass.HARD
        return BounceClass.SOFT
    if specific in HARD_BOUNCE_STATUSES:
        return BounceClass.HARD
    if specific.startswith("5.7."):
        return BounceClass.POLICY
    # 4.x.x, the soft list, and other permanent codes whose cause is not the address itself.
    return BounceClass.SOFT


def _smtp_class(diagnostic: str) -> int | None:
    code = find_smtp_code(diagnostic)
    return code // 100 if code else None
