"""The per-job return path (VERP, ``bounces+<token>@<bounce domain>``) and the per-job
Message-ID (``<campaign-uuid.job-id.tag@domain>``), read back from a bounce.

Job ids are sequential, so a Message-ID names a job only with its tag: a job token signed for
the purpose "message-id". Ids of the older shape without a tag name no job.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from campaigns.tracking.routes import TokenPurpose
from campaigns.tracking.tokens import sign_job_token, verify_job_token

RETURN_PATH_PREFIX = "bounces+"
# Linear on any text: fixed-length or bounded groups, and the domain cannot contain "<" or ">".
_MESSAGE_ID = re.compile(
    r"<([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,19})"
    r"(?:\.([a-z2-7]{1,40}))?@[^<>\s]{1,255}>",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReturnPathMatch:
    address: str
    job_id: int | None
    """None when the token is forged or mangled."""


def return_path_for(secret: bytes, job_id: int, domain: str) -> str:
    """A job's envelope sender: a bounce names its job even when its body does not."""
    return f"{RETURN_PATH_PREFIX}{sign_job_token(secret, TokenPurpose.BOUNCE, job_id)}@{domain}"


def is_return_path(address: str) -> bool:
    return address.lower().startswith(RETURN_PATH_PREFIX) and "@" in address


def find_return_path(secret: bytes, addresses: Iterable[str]) -> ReturnPathMatch | None:
    """The first return-path address among ``addresses``, with the job its token names."""
    for address in addresses:
        if not is_return_path(address):
            continue
        local_part = address.rsplit("@", 1)[0]
        token = local_part[len(RETURN_PATH_PREFIX) :]
        return ReturnPathMatch(
            address=address, job_id=verify_job_token(secret, TokenPurpose.BOUNCE, token)
        )
    return None


@dataclass(frozen=True)
class MessageIdMatch:
    campaign_uuid: str
    job_id: int | None
    """None when the tag is missing, forged or names another job."""


def message_id_tagger(secret: bytes) -> Callable[[int], str]:
    """The tag of a job's Message-ID, for :class:`campaigns.content.message.MessageSkeleton`."""
    return functools.partial(sign_job_token, secret, TokenPurpose.MESSAGE_ID)


def find_message_id(secret: bytes, text: str) -> MessageIdMatch | None:
    """The first Message-ID of our shape in ``text``, with the job its tag proves, else None."""
    match = _MESSAGE_ID.search(text or "")
    if match is None:
        return None
    campaign_uuid, job_id, tag = match.group(1).lower(), int(match.group(2)), match.group(3)
    if tag is None or verify_job_token(secret, TokenPurpose.MESSAGE_ID, tag) != job_id:
        return MessageIdMatch(campaign_uuid=campaign_uuid, job_id=None)
    return MessageIdMatch(campaign_uuid=campaign_uuid, job_id=job_id)
