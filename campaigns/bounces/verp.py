"""The per-job return path (VERP, ``bounces+<token>@<bounce domain>``) and the per-job
Message-ID (``<campaign-uuid.job-id@domain>``), read back from a bounce."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from campaigns.tracking.routes import TokenPurpose
from campaigns.tracking.tokens import sign_job_token, verify_job_token

RETURN_PATH_PREFIX = "bounces+"
_MESSAGE_ID = re.compile(
    r"<([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,19})@[^<>\s]+>",
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


def job_of_message_id(message_id: str) -> tuple[str, int] | None:
    """(campaign uuid, job id) from one of our Message-IDs, else None."""
    match = _MESSAGE_ID.search(message_id or "")
    if match is None:
        return None
    return match.group(1).lower(), int(match.group(2))
