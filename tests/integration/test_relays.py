"""Several relays with real SMTP servers, a real Redis and a real database: configuration,
weighted failover, deferral when every relay is down, per-campaign relays, throttling feedback,
connection caps, and waiting for permits without losing pause or leases."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from campaigns.core.errors import ConfigError
from campaigns.core.models import Job, JobState, utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.job_store import release_expired_leases
from campaigns.lifecycle.campaign_service import pause_campaign
from tests.conftest import run_edm, wait_until
from tests.factories import campaign_with_jobs
from tests.smtp_server import RecordingSmtpServer
from workers.delivery.batch import SEND_WINDOW_S, BatchSummary, DeliveryContext, deliver_batch
from workers.relays.config import RelayConfig, RelaySetConfig, load_relay_config
from workers.relays.rates import effective_rates
from workers.relays.relay_set import (
    TRANSACTIONAL_RESERVED_CONNECTIONS,
    UNLIMITED_RECHECK_S,
    RelaySet,
)
from workers.smtp.pool import SendOutcomeKind, SmtpPool
from workers.smtp.url import parse_smtp_url

T = TypeVar("T")
MESSAGE = b"From: news@example.com\r\nSubject: Hello\r\n\r\nHello there.\r\n"


def _relay(name: str, url: str, **limits: Any) -> RelayConfig:
    return RelayConfig(name=name, relay=parse_smtp_url(url), **limits)


def _config(*relays: RelayConfig, **options: Any) -> RelaySetConfig:
    return RelaySetConfig(relays=relays, namespace=f"test-{uuid.uuid4().hex}", **options)


def _with_relays(
    redis_url: str,
    config: RelaySetConfig,
    body: Callable[[RelaySet], Awaitable[T]],
    *,
    connections: int = 3,
    unlimited_recheck_s: float = UNLIMITED_RECHECK_S,
) -> T:
    """Run ``body`` with a RelaySet of real pools on a fresh loop, as one worker process."""

    async def run() -> T:
        redis = Redis.from_url(redis_url)
        pools = {
            relay.name: SmtpPool(relay.relay, size=connections, timeout_s=5)
            for relay in config.relays
        }
        relays = RelaySet(
            config,
            redis=redis,
            pools=pools,
            random_source=random.Random(7),
            unlimited_recheck_s=unlimited_recheck_s,
        )
        try:
            return await body(relays)
        finally:
            await relays.close()
            await redis.aclose()

    return asyncio.run(run())


def _deliver(
    database: Database,
    redis_url: str,
    config: RelaySetConfig,
    job_ids: list[int],
    *,
    connections: int = 3,
    lease_s: float = 30.0,
    send_window_s: float = SEND_WINDOW_S,
) -> BatchSummary:
    settings = Settings(secret_key="k", smtp_connections=connections, lease_s=lease_s)

    async def body(relays: RelaySet) -> BatchSummary:
        context = DeliveryContext(
            settings=settings,
            database=database,
            relays=relays,
            worker_id="test",
        )
        return await deliver_batch(context, job_ids, send_window_s=send_window_s)

    return _with_relays(redis_url, config, body, connections=connections)


def _jobs(database: Database) -> list[Job]:
    with database.session() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _received(*servers: RecordingSmtpServer) -> Counter[str]:
    return Counter(
        rcpt for server in servers for message in server.messages for rcpt in message.rcpt_tos
    )


def _addresses(count: int) -> Counter[str]:
    return Counter(f"person{i}@example.com" for i in range(count))


def test_the_config_file_describes_relays_and_domain_limits(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "edm.toml"
    config_file.write_text(
        """
send_rate = 100
relay_cooloff_s = 10

[[relays]]
name = "primary"
url = "smtp+starttls://user:secret@smtp1.example.com:587"
weight = 3
per_second = 50
per_hour = 100000
per_day = 1000000
max_connections = 20

[[relays]]
url = "smtp://backup.example.com"

[domain_limits]
"Gmail.com" = 20
"*" = 50

[adaptive]
hold_s = 30
"""
    )
    config = load_relay_config(Settings.from_env({"EDM_CONFIG": str(config_file)}))
    primary, backup = config.relays
    assert (primary.name, primary.relay.host, primary.relay.username) == (
        "primary",
        "smtp1.example.com",
        "user",
    )
    assert (primary.weight, primary.per_second, primary.per_hour, primary.per_day) == (
        3,
        50,
        100_000,
        1_000_000,
    )
    assert (primary.max_connections, primary.per_second_burst) == (20, 5)
    assert (backup.name, backup.weight, backup.per_second) == ("backup.example.com:25", 1, 0)
    assert (config.send_rate, config.relay_cooloff_s) == (100, 10)
    assert config.domain_rate("gmail.com") == 20
    assert config.domain_rate("example.org") == 50
    assert config.relays_named(["backup.example.com:25"]) == (backup,)
    assert config.relays_named(None) == (primary, backup)
    assert config.adaptive.hold_s == 30


def test_without_relay_tables_the_one_relay_is_edm_smtp_url_capped_by_edm_send_rate() -> None:
    config = load_relay_config(
        Settings.from_env({"EDM_SMTP_URL": "smtp://relay.example.com:2525", "EDM_SEND_RATE": "40"})
    )
    (relay,) = config.relays
    assert (relay.name, relay.relay.port, relay.per_second) == ("relay.example.com:2525", 2525, 0)
    assert config.send_rate == 40
    assert config.domain_limits == {}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"relays": [{"weight": 2}]}, "config [[relays]] #1: url is required"),
        (
            {"relays": [{"url": "smtp://a", "per_second": -1}]},
            "config [[relays]] #1 (a:25): per_second: cannot be negative, got -1",
        ),
        (
            {"relays": [{"url": "smtp://a", "weight": 0}]},
            "config [[relays]] #1 (a:25): weight: must be greater than 0, got 0",
        ),
        (
            {"relays": [{"url": "smtp://a", "per_day": 1.5}]},
            "config [[relays]] #1 (a:25): per_day: expected a whole number, got 1.5",
        ),
        (
            {"relays": [{"url": "smtp://a", "speed": 3}]},
            "config [[relays]] #1: unknown key 'speed'",
        ),
        ({"relays": [{"url": "ftp://a"}]}, "config [[relays]] #1: EDM_SMTP_URL 'ftp://a'"),
        (
            {"relays": [{"url": "smtp://a"}, {"url": "smtp://a:25"}]},
            "config [[relays]]: two relays are named 'a:25'",
        ),
        (
            {"domain_limits": {"gmail.com": "fast"}},
            "config [domain_limits] 'gmail.com': expected a number, got 'fast'",
        ),
        (
            {"campaign_relays": {"7": ["backup"]}},
            "config [campaign_relays]: no longer read; a campaign's relays are chosen when it is "
            "created (edm campaigns create --relay NAME)",
        ),
        ({"adaptive": {"min_factor": 2}}, "config [adaptive]: min_factor must be in (0, 1]"),
    ],
)
def test_a_bad_relay_setting_is_one_error_naming_the_entry(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_relay_config(replace(Settings(), extra=extra))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_relay_stopped_mid_run_hands_its_share_to_the_other_and_every_message_arrives_once(
    database: Database, redis_url: str
) -> None:
    count = 60
    with RecordingSmtpServer() as first:
        stop_after = 10

        def stop_first_relay(_recipients: list[str]) -> None:
            # One connection, one message at a time: while the second relay takes this one,
            # nothing is in flight on the first, so stopping it loses nothing.
            if len(second.messages) == stop_after - 1:
                first.stop()

        with RecordingSmtpServer(data_behaviour=stop_first_relay) as second:
            _, job_ids = campaign_with_jobs(database, count)
            config = _config(_relay("first", first.url), _relay("second", second.url))
            summary = _deliver(database, redis_url, config, job_ids, connections=1)
            rates = _with_relays(
                redis_url, config, lambda relays: effective_rates(relays.limiter.redis, config)
            )

    assert summary.outcomes == {JobState.SENT: count}
    assert _received(first, second) == _addresses(count)
    assert 0 < len(first.messages) < count - stop_after
    assert len(second.messages) >= stop_after
    closed = {relay.name: relay for relay in rates.relays}
    assert closed["first"].closed_for_s > 0
    assert "cannot connect" in (closed["first"].closed_reason or "")
    assert closed["second"].closed_for_s == 0


def test_with_every_relay_down_jobs_are_deferred_not_failed(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as first, RecordingSmtpServer() as second:
        config = _config(_relay("first", first.url), _relay("second", second.url))
    _, job_ids = campaign_with_jobs(database, 5)
    before = utc_now()

    summary = _deliver(database, redis_url, config, job_ids)

    assert summary.outcomes == {JobState.DEFERRED: 5}
    jobs = _jobs(database)
    assert all(job.attempts == 1 for job in jobs)
    assert all(job.next_attempt_at is not None and job.next_attempt_at > before for job in jobs)
    replies = [job.last_reply or "" for job in jobs]
    assert any("cannot connect" in reply for reply in replies)
    assert all("cannot connect" in reply or "every relay" in reply for reply in replies)


def test_a_campaign_sends_only_through_the_relays_chosen_for_it(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as first, RecordingSmtpServer() as second:
        _, job_ids = campaign_with_jobs(database, 20, relays=["second"])
        config = _config(_relay("first", first.url, weight=100), _relay("second", second.url))
        _deliver(database, redis_url, config, job_ids)
        assert len(first.messages) == 0
        assert _received(second) == _addresses(20)


def test_a_campaign_whose_relays_left_the_config_is_deferred_naming_them(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as first, RecordingSmtpServer() as second:
        _, job_ids = campaign_with_jobs(database, 5, relays=["backup"])
        config = _config(_relay("first", first.url), _relay("second", second.url))
        before = utc_now()
        summary = _deliver(database, redis_url, config, job_ids)
        assert len(first.messages) + len(second.messages) == 0

    assert summary.outcomes == {JobState.DEFERRED: 5}
    for job in _jobs(database):
        assert job.next_attempt_at is not None and job.next_attempt_at > before
        assert job.last_reply == (
            "not sent: the campaign's relays (backup) are not configured on this worker "
            "(configured: first, second)"
        )


def test_a_campaign_with_one_of_its_relays_left_sends_through_the_one_still_configured(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as first, RecordingSmtpServer() as second:
        _, job_ids = campaign_with_jobs(database, 10, relays=["backup", "second"])
        config = _config(_relay("first", first.url, weight=100), _relay("second", second.url))
        summary = _deliver(database, redis_url, config, job_ids)
        assert len(first.messages) == 0
        assert _received(second) == _addresses(10)
    assert summary.outcomes == {JobState.SENT: 10}


def test_weights_share_the_messages_between_relays(database: Database, redis_url: str) -> None:
    with RecordingSmtpServer() as first, RecordingSmtpServer() as second:
        _, job_ids = campaign_with_jobs(database, 200)
        config = _config(_relay("first", first.url, weight=3), _relay("second", second.url))
        _deliver(database, redis_url, config, job_ids)
        assert _received(first, second) == _addresses(200)
        assert 130 <= len(first.messages) <= 170


def test_a_throttling_reply_slows_that_domain_down_for_every_worker(redis_url: str) -> None:
    def behaviour(address: str) -> tuple[int, str] | None:
        if address.endswith("@throttled.example"):
            return 421, "4.7.0 Try again later"
        return None

    with RecordingSmtpServer(behaviour=behaviour) as server:
        config = _config(_relay("only", server.url), domain_limits={"gmail.com": 20.0})

        async def body(relays: RelaySet) -> Any:
            outcomes = [
                await relays.send(
                    sender="bounces@example.com",
                    recipient=recipient,
                    message=MESSAGE,
                    should_stop=lambda: False,
                )
                for recipient in ("someone@throttled.example", "someone@fine.example")
            ]
            return outcomes, await effective_rates(
                relays.limiter.redis, config, domains=["fine.example"]
            )

        (throttled, fine), rates = _with_relays(redis_url, config, body)

    assert throttled is not None and (throttled.kind, throttled.code) == (
        SendOutcomeKind.DEFERRED,
        421,
    )
    assert fine is not None and fine.kind == SendOutcomeKind.ACCEPTED
    domains = {domain.domain: domain for domain in rates.domains}
    assert set(domains) == {"fine.example", "gmail.com", "throttled.example"}
    slowed = domains["throttled.example"]
    assert (slowed.configured_per_second, slowed.factor, slowed.effective_per_second) == (
        None,
        0.5,
        5.0,
    )
    assert (domains["fine.example"].factor, domains["fine.example"].effective_per_second) == (
        1.0,
        None,
    )
    assert domains["gmail.com"].effective_per_second == 20.0


def test_while_no_limit_is_in_force_sends_skip_redis_until_a_throttling_reply(
    redis_url: str,
) -> None:

    def behaviour(address: str) -> tuple[int, str] | None:
        return (421, "4.7.0 Try again later") if address.startswith("first@") else None

    with RecordingSmtpServer(behaviour=behaviour) as server:
        config = _config(_relay("only", server.url))

        async def body(relays: RelaySet) -> tuple[list[str], int, int]:
            asked: list[int] = []
            try_acquire = relays.limiter.try_acquire

            async def counted(limits: Any) -> Any:
                asked.append(len(limits))
                return await try_acquire(limits)

            relays.limiter.try_acquire = counted  # type: ignore[method-assign]
            kinds = []
            for recipient in [f"u{n}@quiet.example" for n in range(20)] + [
                "first@busy.example",
                "second@busy.example",
            ]:
                outcome = await relays.send(
                    sender="bounces@example.com",
                    recipient=recipient,
                    message=MESSAGE,
                    should_stop=lambda: False,
                )
                assert outcome is not None
                kinds.append(outcome.kind)
                if recipient.startswith("u19@"):
                    asked_for_quiet = len(asked)
            return kinds, asked_for_quiet, len(asked)

        # Long enough that a slow machine cannot turn it into a timing test.
        kinds, asked_for_quiet, asked_in_all = _with_relays(
            redis_url, config, body, unlimited_recheck_s=60.0
        )

    assert kinds == [SendOutcomeKind.ACCEPTED] * 20 + [
        SendOutcomeKind.DEFERRED,
        SendOutcomeKind.ACCEPTED,
    ]
    # Twenty sends within the recheck time: one question to Redis.
    assert asked_for_quiet == 1
    # busy.example: asked for its first send, and again after it throttled.
    assert asked_in_all == asked_for_quiet + 2


def test_max_connections_caps_messages_in_flight_across_worker_processes(redis_url: str) -> None:
    in_flight, most = 0, 0
    lock = threading.Lock()

    def transaction_starts(_address: str) -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)

    def transaction_ends(_recipients: list[str]) -> None:
        nonlocal in_flight
        with lock:
            in_flight -= 1

    with RecordingSmtpServer(
        behaviour=transaction_starts, data_behaviour=transaction_ends, delay_s=0.1
    ) as server:
        config = _config(_relay("only", server.url, max_connections=3))

        async def send_all(relays: RelaySet) -> None:
            async def sender(number: int) -> None:
                for message_number in range(4):
                    await relays.send(
                        sender="bounces@example.com",
                        recipient=f"p{number}-{message_number}@example.com",
                        message=MESSAGE,
                        should_stop=lambda: False,
                    )

            await asyncio.gather(*(sender(number) for number in range(3)))

        # Two worker processes' worth of relay sets, each with three senders.
        workers = [
            threading.Thread(target=_with_relays, args=(redis_url, config, send_all))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert len(server.messages) == 24
    # Campaign sends: the last slot is kept for transactional mail.
    assert most == 3 - TRANSACTIONAL_RESERVED_CONNECTIONS


def test_a_campaign_saturating_a_relay_leaves_a_connection_to_transactional_mail(
    redis_url: str,
) -> None:
    in_flight: Counter[str] = Counter()
    most: Counter[str] = Counter()
    lock = threading.Lock()

    def kind(address: str) -> str:
        return address.split("-")[0]

    def transaction_starts(address: str) -> None:
        with lock:
            in_flight[kind(address)] += 1
            most[kind(address)] = max(most[kind(address)], in_flight[kind(address)])

    def transaction_ends(recipients: list[str]) -> None:
        with lock:
            in_flight[kind(recipients[0])] -= 1

    with RecordingSmtpServer(
        behaviour=transaction_starts, data_behaviour=transaction_ends, delay_s=0.1
    ) as server:
        config = _config(_relay("only", server.url, max_connections=2))

        async def campaign_and_lane(relays: RelaySet) -> None:
            async def send(recipient: str, *, transactional: bool) -> None:
                await relays.send(
                    sender="bounces@example.com",
                    recipient=recipient,
                    message=MESSAGE,
                    should_stop=lambda: False,
                    transactional=transactional,
                )

            async def campaign_sender(number: int) -> None:
                for message_number in range(10):
                    await send(
                        f"campaign-{number}-{message_number}@example.com", transactional=False
                    )

            async def lane() -> None:
                while len(server.messages) < 3:  # the campaign holds the relay first
                    await asyncio.sleep(0.01)
                for number in range(5):
                    await send(f"tx-{number}@example.net", transactional=True)

            await asyncio.gather(lane(), *(campaign_sender(number) for number in range(4)))

        _with_relays(redis_url, config, campaign_and_lane, connections=3)
        arrived = [kind(message.rcpt_tos[0]) for message in server.messages]
    assert Counter(arrived) == {"campaign": 40, "tx": 5}
    # Four campaign senders wanted both connections and got one; the lane had the other.
    assert most == {"campaign": 1, "tx": 1}
    last_tx = max(index for index, what in enumerate(arrived) if what == "tx")
    assert arrived[last_tx + 1 :].count("campaign") >= 20


def test_a_job_waiting_for_a_permit_when_the_campaign_pauses_is_handed_back_unsent(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as server:
        campaign_id, job_ids = campaign_with_jobs(database, 20)
        config = _config(_relay("only", server.url), send_rate=2.0)
        pauser = threading.Timer(1.2, pause_campaign, args=(database, campaign_id))
        pauser.start()
        started = time.monotonic()
        summary = _deliver(database, redis_url, config, job_ids)
        elapsed_s = time.monotonic() - started
        pauser.join()
        sent = len(server.messages)

    assert elapsed_s < 1.2 + 1.5
    assert 1 <= sent <= 5
    assert summary.outcomes == {JobState.SENT: sent}
    assert summary.released == 20 - sent
    states = Counter(job.state for job in _jobs(database))
    assert states == {JobState.SENT: sent, JobState.QUEUED: 20 - sent}
    assert all(job.claimed_by is None for job in _jobs(database))


def test_leases_of_jobs_waiting_for_permits_are_renewed(database: Database, redis_url: str) -> None:
    lease_s = 3.0
    expired_while_waiting: list[int] = []

    def look_for_expired_leases() -> None:
        # What the dispatcher does: take back jobs whose lease ran out.
        time.sleep(lease_s + 1.5)
        expired_while_waiting.append(release_expired_leases(database, utc_now()))

    with RecordingSmtpServer() as server:
        _, job_ids = campaign_with_jobs(database, 14)
        config = _config(_relay("only", server.url), send_rate=2.0)
        checker = threading.Thread(target=look_for_expired_leases)
        checker.start()
        summary = _deliver(database, redis_url, config, job_ids, lease_s=lease_s)
        checker.join()
        assert _received(server) == _addresses(14)

    assert expired_while_waiting == [0]
    assert summary.outcomes == {JobState.SENT: 14}


def test_a_batch_hands_back_what_it_could_not_send_within_its_window(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as server:
        _, job_ids = campaign_with_jobs(database, 10)
        config = _config(_relay("only", server.url), send_rate=2.0)
        summary = _deliver(database, redis_url, config, job_ids, send_window_s=1.0)
        sent = len(server.messages)

    assert 1 <= sent <= 5
    assert summary.released == 10 - sent
    assert Counter(job.state for job in _jobs(database)) == {
        JobState.SENT: sent,
        JobState.QUEUED: 10 - sent,
    }


def test_without_redis_a_batch_sends_nothing_and_hands_every_job_back(
    database: Database, redis_url: str
) -> None:
    with RecordingSmtpServer() as server:
        _, job_ids = campaign_with_jobs(database, 8)
        config = _config(_relay("only", server.url))
        # Nothing listens on port 1: every request for a permit fails.
        summary = _deliver(database, "redis://127.0.0.1:1/0", config, job_ids)
        assert server.messages == []
    assert (summary.claimed, summary.released, summary.outcomes) == (8, 8, {})
    assert {job.state for job in _jobs(database)} == {JobState.QUEUED}


def _relays_toml(tmp_path: Path, *urls: str) -> str:
    path = tmp_path / "relays.toml"
    path.write_text("".join(f'[[relays]]\nurl = "{url}"\n' for url in urls))
    return str(path)


def _dead_url() -> str:
    with RecordingSmtpServer() as server:
        return server.url


def test_a_worker_refuses_to_start_when_no_relay_can_be_reached(
    tmp_path: Path, edm_env: dict[str, str]
) -> None:
    first, second = _dead_url(), _dead_url()
    env = {**edm_env, "EDM_CONFIG": _relays_toml(tmp_path, first, second)}
    result = run_edm(["worker", "--concurrency=1"], env, timeout_s=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].count("cannot connect") == 2, lines[0]
    assert "no SMTP relay can be reached" in lines[0]


def test_a_worker_starts_with_one_relay_down_and_warns_about_it(
    tmp_path: Path,
    edm_env: dict[str, str],
    smtp_server: RecordingSmtpServer,
    start_worker: Callable[..., Any],
) -> None:
    dead = _dead_url()
    env = {"EDM_CONFIG": _relays_toml(tmp_path, smtp_server.url, dead)}
    worker = start_worker(concurrency=1, dispatcher=False, env=env)

    def started() -> bool:
        return "edm worker: broker" in worker.log_path.read_text()

    assert wait_until(started, timeout_s=60), worker.log_path.read_text()
    log = worker.log_path.read_text()
    port = dead.rsplit(":", 1)[1]
    assert f"edm worker: warning: SMTP relay smtp://127.0.0.1:{port}: cannot connect" in log
    assert worker.poll() is None


def test_a_worker_sends_a_campaign_created_for_one_relay_only_through_that_relay(
    tmp_path: Path, edm_env: dict[str, str], start_worker: Callable[..., Any]
) -> None:
    addresses = [f"reader{i}@example.com" for i in range(12)]
    (tmp_path / "people.csv").write_text("email\n" + "".join(f"{a}\n" for a in addresses))
    template = tmp_path / "hello"
    template.mkdir()
    (template / "subject.txt").write_text("Hello")
    (template / "body.html").write_text("<p>Hello {{ email }}</p>")
    with RecordingSmtpServer() as first, RecordingSmtpServer() as second:
        config = tmp_path / "relays.toml"
        config.write_text(
            f'[[relays]]\nname = "first"\nurl = "{first.url}"\nweight = 100\n'
            f'[[relays]]\nname = "second"\nurl = "{second.url}"\n'
        )
        env = {**edm_env, "EDM_CONFIG": str(config)}
        imported = run_edm(["lists", "import", str(tmp_path / "people.csv"), "--list", "p"], env)
        assert imported.returncode == 0, imported.stderr
        created = run_edm(
            ["campaigns", "create", "--name", "Via second", "--list", "p", "--template",
             str(template), "--from", "news@example.com", "--relay", "second", "--json"],
            env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        campaign_id = str(json.loads(created.stdout)["id"])
        assert run_edm(["campaigns", "schedule", campaign_id, "--now"], env).returncode == 0
        start_worker(concurrency=1, env={"EDM_CONFIG": str(config)})

        def completed() -> bool:
            status = run_edm(["campaigns", "status", campaign_id, "--json"], env)
            return json.loads(status.stdout)["state"] == "completed"

        assert wait_until(completed, timeout_s=90, interval_s=1.0)
        assert first.messages == []
        assert _received(second) == Counter(addresses)
