"""Clients sending transactional mail the way an application does: JSON to ``POST /api/tx``
(httpx), or a message over SMTP to ``edm submit serve`` (aiosmtplib). Each send answers the
``time.monotonic()`` at which the project accepted the message (202, or 250 to DATA)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from email.message import EmailMessage
from types import TracebackType

import aiosmtplib
import httpx

MARK_DOMAIN = "tx.bench.example"
"""Every transactional recipient is at this domain: the sink reports when each one arrived."""
FROM_ADDRESS = "Bench Shop <orders@bench.example>"
SUBMISSION_LOGIN = "app@bench.example"
KEEPALIVE_S = 2.0
ATTEMPTS = 3
REQUEST_TIMEOUT_S = 300.0
"""Generous: on a loaded machine a request can wait long for SQLite's write lock."""

Send = Callable[[str], Awaitable[float]]


def recipients(label: str, count: int) -> list[str]:
    return [f"{label}-{index}@{MARK_DOMAIN}" for index in range(count)]


def _api_body(address: str) -> dict[str, object]:
    return {
        "to": {"email": address},
        "subject": "Your sign-in code is {{ code }}",
        "html": "<p>Hello,</p><p>your sign-in code is <b>{{ code }}</b>.</p>",
        "data": {"code": address.split("@")[0].rsplit("-", 1)[-1].zfill(6)},
    }


class ApiSender:
    """One HTTP/1.1 client with a keep-alive connection per concurrent request."""

    def __init__(self, base_url: str, token: str, *, connections: int) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            # Idle connections are dropped before uvicorn's 5 s keep-alive ends them: a request
            # sent on one it is closing fails with a ReadError.
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
                keepalive_expiry=KEEPALIVE_S,
            ),
            timeout=REQUEST_TIMEOUT_S,
        )
        self.retries = 0

    async def send(self, address: str) -> float:
        """One message; a request lost on the way is sent again with the same Idempotency-Key,
        as an application should, so that it is never recorded twice."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._client.post(
                    "/api/tx", json=_api_body(address), headers={"Idempotency-Key": address}
                )
                break
            except httpx.TransportError as error:
                if attempt == ATTEMPTS:
                    raise RuntimeError(f"POST /api/tx to {address}: {error!r}") from error
                self.retries += 1
        accepted_at = time.monotonic()
        if response.status_code != 202:
            raise RuntimeError(
                f"POST /api/tx to {address}: {response.status_code} {response.text[:200]}"
            )
        return accepted_at

    async def __aenter__(self) -> ApiSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.aclose()


class SubmissionSender:
    """A session per message (connect, AUTH PLAIN, one message, QUIT), as a web application
    sending one password reset does; loopback, so no TLS is needed to sign in."""

    def __init__(self, port: int, password: str) -> None:
        self._port = port
        self._password = password

    async def send(self, address: str) -> float:
        message = EmailMessage()
        message["From"] = FROM_ADDRESS
        message["To"] = address
        message["Subject"] = "Reset your password"
        message.set_content(f"Hello,\n\nfollow this link to reset your password: {address}\n")
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=self._port, start_tls=False, timeout=REQUEST_TIMEOUT_S
        )
        try:
            await smtp.connect()
            try:
                await smtp.login(SUBMISSION_LOGIN, self._password)
                await smtp.send_message(message)
                accepted_at = time.monotonic()
            finally:
                await smtp.quit()
        except (aiosmtplib.SMTPException, OSError) as error:
            raise RuntimeError(f"submission to {address}: {error!r}") from error
        return accepted_at

    async def __aenter__(self) -> SubmissionSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


async def send_paced(send: Send, addresses: list[str], rate_per_s: float) -> dict[str, float]:
    """Start one send every ``1 / rate_per_s`` seconds whatever the answers' delay (an open
    loop, as independent users would); each recipient's acceptance time once all answered."""
    accepted: dict[str, float] = {}

    async def one(address: str) -> None:
        accepted[address] = await send(address)

    started = time.monotonic()
    tasks = []
    for index, address in enumerate(addresses):
        delay = started + index / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(address)))
    await asyncio.gather(*tasks)
    return accepted


async def send_concurrently(send: Send, addresses: Iterable[str], clients: int) -> dict[str, float]:
    """``clients`` loops each sending the next message as soon as their previous one was
    accepted (a closed loop: as fast as the project answers)."""
    accepted: dict[str, float] = {}
    pending = iter(addresses)

    async def client() -> None:
        for address in pending:
            accepted[address] = await send(address)

    await asyncio.gather(*(client() for _ in range(clients)))
    return accepted
