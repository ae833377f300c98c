"""Global limits in a real Redis: bursts, long-run rates, quotas, connection slots, slow-down, and
four real worker processes sharing one send rate against one SMTP server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from campaigns.lists.sample_lists import write_sample_list
from tests.conftest import run_edm, wait_until
from tests.smtp_server import RecordingSmtpServer
from workers.rate_limits import (
    AdaptivePolicy,
    AdaptiveSlowdown,
    ClosedWhileSet,
    Concurrency,
    Denial,
    Limit,
    Permit,
    PermitRefused,
    Quota,
    Rate,
    RedisRateLimiter,
    default_burst,
)

T = TypeVar("T")


def with_limiter(redis_url: str, body: Callable[[RedisRateLimiter, str], Awaitable[T]]) -> T:
    """Run ``body(limiter, namespace)`` on a fresh loop with its own client and key namespace."""

    async def run() -> T:
        redis = Redis.from_url(redis_url)
        try:
            return await body(RedisRateLimiter(redis), f"test-{uuid.uuid4().hex}")
        finally:
            await redis.aclose()

    return asyncio.run(run())


async def _permits_over(
    limiter: RedisRateLimiter, limits: list[Limit], *, waiters: int, duration_s: float
) -> list[float]:
    """When (by Redis's clock) ``waiters`` competing coroutines got permits in ``duration_s``."""
    times: list[float] = []
    deadline = time.monotonic() + duration_s

    async def waiter() -> None:
        while time.monotonic() < deadline:
            try:
                permit = await limiter.wait_for(
                    limits, give_up=lambda _: time.monotonic() > deadline
                )
            except PermitRefused:
                return
            if time.monotonic() <= deadline:
                assert permit.granted_at is not None
                times.append(permit.granted_at)

    await asyncio.gather(*(waiter() for _ in range(waiters)))
    return sorted(times)


def _busiest_window(times: list[float], window_s: float = 1.0) -> int:
    busiest, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window_s:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


def test_a_burst_never_exceeds_the_bucket(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> list[Permit | Denial]:
        rate = Rate(f"{namespace}:rate", per_second=1, burst=3)
        return [await limiter.try_acquire([rate]) for _ in range(10)]

    answers = with_limiter(redis_url, body)
    assert [isinstance(answer, Permit) for answer in answers] == [True] * 3 + [False] * 7
    denial = answers[3]
    assert isinstance(denial, Denial) and 0 < (denial.wait_s or 0) <= 1.0


def test_the_long_run_rate_stays_within_a_few_percent_and_no_second_exceeds_it(
    redis_url: str,
) -> None:
    per_second, burst = 50.0, 5

    async def body(limiter: RedisRateLimiter, namespace: str) -> list[float]:
        rate = Rate(f"{namespace}:rate", per_second=per_second, burst=burst)
        return await _permits_over(limiter, [rate], waiters=8, duration_s=4.0)

    times = with_limiter(redis_url, body)
    steady = times[burst:]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    assert achieved == pytest.approx(per_second, rel=0.05)
    assert _busiest_window(times) <= per_second + burst


def test_a_domain_limit_holds_on_its_own_and_its_refusals_cost_the_relay_nothing(
    redis_url: str,
) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> tuple[list[float], list[float]]:
        relay = Rate(f"{namespace}:relay", per_second=100, burst=10)
        domain = Rate(f"{namespace}:domain", per_second=5, burst=1)
        # Many eager waiters for the slow domain: were a refused attempt to spend the relay's
        # token, the other domain would starve.
        slow, other = await asyncio.gather(
            _permits_over(limiter, [relay, domain], waiters=6, duration_s=3.0),
            _permits_over(limiter, [relay], waiters=4, duration_s=3.0),
        )
        return slow, other

    slow, other = with_limiter(redis_url, body)
    assert 5 * 3 - 2 <= len(slow) <= 5 * 3 + 1
    assert len(slow) + len(other) == pytest.approx(100 * 3 + 10, rel=0.07)


def test_a_quota_counts_a_rolling_window_and_says_when_it_has_room_again(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> tuple[int, Denial, bool]:
        quota = Quota(f"{namespace}:day", limit=5, window_s=1.0, buckets=10)
        answers = [await limiter.try_acquire([quota]) for _ in range(8)]
        taken = sum(isinstance(answer, Permit) for answer in answers)
        denial = answers[-1]
        assert isinstance(denial, Denial)
        await asyncio.sleep(denial.wait_s or 0)
        later = await limiter.try_acquire([quota])
        return taken, denial, isinstance(later, Permit)

    taken, denial, room_again = with_limiter(redis_url, body)
    assert taken == 5
    assert 0.9 <= (denial.wait_s or 0) <= 1.1
    assert room_again


def test_connection_slots_are_shared_renewed_while_held_and_freed_on_release(
    redis_url: str,
) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> None:
        slots = Concurrency(f"{namespace}:connections", limit=2, hold_s=0.3)
        async with limiter.acquire([slots]), limiter.acquire([slots]):
            # Held well past hold_s: the holders renew, so the slots stay taken.
            await asyncio.sleep(0.8)
            third = await limiter.try_acquire([slots])
            assert isinstance(third, Denial) and third.wait_s is None
        assert isinstance(await limiter.try_acquire([slots]), Permit)

    with_limiter(redis_url, body)


def test_a_slot_whose_holder_vanished_frees_itself(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> None:
        slots = Concurrency(f"{namespace}:connections", limit=1, hold_s=0.3)
        assert isinstance(await limiter.try_acquire([slots]), Permit)  # never released
        assert isinstance(await limiter.try_acquire([slots]), Denial)
        await asyncio.sleep(0.4)
        assert isinstance(await limiter.try_acquire([slots]), Permit)

    with_limiter(redis_url, body)


def test_a_refused_permit_takes_nothing_from_the_limits_that_allowed(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> None:
        rate = Rate(f"{namespace}:rate", per_second=0.5, burst=1)
        slots = Concurrency(f"{namespace}:connections", limit=1)
        held = await limiter.try_acquire([slots])
        assert isinstance(held, Permit)
        refused = await limiter.try_acquire([rate, slots])
        assert isinstance(refused, Denial) and refused.limit == slots
        # The rate's single token is still there.
        assert isinstance(await limiter.try_acquire([rate]), Permit)
        await limiter.release(held)

    with_limiter(redis_url, body)


def test_a_closed_relay_gives_no_permit_until_its_cooloff_ends(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> None:
        closed = ClosedWhileSet(f"{namespace}:down")
        await limiter.redis.set(closed.key, "refused", px=300)
        denial = await limiter.try_acquire([closed])
        assert isinstance(denial, Denial) and 0 < (denial.wait_s or 0) <= 0.3
        await asyncio.sleep(0.35)
        assert isinstance(await limiter.try_acquire([closed]), Permit)

    with_limiter(redis_url, body)


def test_a_waiter_gives_up_promptly_when_told_to(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> float:
        rate = Rate(f"{namespace}:rate", per_second=0.01, burst=1)
        await limiter.wait_for([rate])
        stop_at = time.monotonic() + 0.3
        with pytest.raises(PermitRefused):
            await limiter.wait_for([rate], give_up=lambda _: time.monotonic() > stop_at)
        return time.monotonic() - stop_at

    late_s = with_limiter(redis_url, body)
    assert late_s < 0.25 + 0.2  # check_s, plus slack for a loaded machine


def test_throttling_halves_a_domain_once_per_event_then_it_recovers_step_by_step(
    redis_url: str,
) -> None:
    policy = AdaptivePolicy(hold_s=1.0, recovery_per_s=0.5, quiet_s=0.1, min_factor=0.1)

    async def body(limiter: RedisRateLimiter, namespace: str) -> list[Any]:
        slowdown = AdaptiveSlowdown(limiter.redis, policy)
        key = f"{namespace}:slowdown"
        seen: list[Any] = [await slowdown.slow_down(key), await slowdown.slow_down(key)]
        await asyncio.sleep(0.15)
        seen.append(await slowdown.slow_down(key))
        seen.append((await slowdown.factors([key]))[0])
        await asyncio.sleep(1.5)  # the 1 s hold, then 0.5 s climbing at 0.5 per second
        seen.append((await slowdown.factors([key]))[0])
        await asyncio.sleep(1.5)
        seen.append((await slowdown.factors([key]))[0])
        return seen

    first, same_event, second, held, climbing, recovered = with_limiter(redis_url, body)
    assert (first, same_event, second, held) == (0.5, 0.5, 0.25, 0.25)
    assert 0.4 <= climbing <= 0.75
    assert recovered in (None, 1.0)


def test_a_domain_without_a_limit_gets_one_only_while_slowed_down(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> tuple[int, int]:
        slowdown = AdaptiveSlowdown(limiter.redis, AdaptivePolicy())
        rate = Rate(
            f"{namespace}:rate",
            per_second=10,
            burst=1,
            adaptive_key=f"{namespace}:slowdown",
            adaptive_mode="when_slowed",
        )
        before = [await limiter.try_acquire([rate]) for _ in range(30)]
        await slowdown.slow_down(f"{namespace}:slowdown")
        after = await _permits_over(limiter, [rate], waiters=3, duration_s=2.0)
        return sum(isinstance(answer, Permit) for answer in before), len(after)

    unlimited, slowed = with_limiter(redis_url, body)
    assert unlimited == 30
    # 10 per second halved to 5, for 2 s (the first permit may come at once).
    assert 9 <= slowed <= 11


def test_an_uncontended_permit_costs_one_quick_redis_round_trip(redis_url: str) -> None:
    async def body(limiter: RedisRateLimiter, namespace: str) -> float:
        limits: list[Limit] = [
            ClosedWhileSet(f"{namespace}:down"),
            Rate(f"{namespace}:all", per_second=1e9, burst=10**9),
            Rate(f"{namespace}:relay", per_second=1e9, burst=10**9),
            Quota(f"{namespace}:day", limit=10**9, window_s=86400),
            Rate(
                f"{namespace}:domain",
                per_second=1e9,
                burst=10**9,
                adaptive_key=f"{namespace}:slowdown",
                adaptive_mode="always",
            ),
        ]
        rounds = 500
        started = time.perf_counter()
        for _ in range(rounds):
            assert isinstance(await limiter.try_acquire(limits), Permit)
        return (time.perf_counter() - started) / rounds

    per_permit_s = with_limiter(redis_url, body)
    assert per_permit_s < 0.005


def _json(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_four_worker_processes_together_keep_to_one_global_send_rate(
    tmp_path: Path,
    edm_env: dict[str, str],
    smtp_server: RecordingSmtpServer,
    start_worker: Callable[..., Any],
) -> None:
    rate, recipients = 40, 500
    burst = default_burst(rate)
    # Small batches, so every worker process has some while the campaign runs.
    env = {**edm_env, "EDM_SEND_RATE": str(rate), "EDM_BATCH_SIZE": "20"}
    facts = write_sample_list(tmp_path / "list.csv", recipients, invalid_ratio=0, duplicate_ratio=0)
    _json(run_edm(["lists", "import", str(facts.path), "--list", "rated", "--json"], env))
    campaign_id = _json(
        run_edm(
            [
                *("campaigns", "create", "--name", "Rated", "--list", "rated"),
                *("--template", "newsletter", "--from", "news@example.com", "--json"),
            ],
            env,
        )
    )["id"]
    workers = [start_worker(concurrency=2, env=env), start_worker(concurrency=2, env=env)]
    assert wait_until(
        lambda: all(" ready." in worker.log_path.read_text() for worker in workers), timeout_s=60
    ), [worker.log_path.read_text()[-2000:] for worker in workers]
    scheduled = run_edm(["campaigns", "schedule", str(campaign_id), "--now"], env)
    assert scheduled.returncode == 0, scheduled.stderr

    assert smtp_server.wait_for(recipients, timeout_s=120)
    time.sleep(1.0)  # anything beyond the expected count would show up by now
    messages = list(smtp_server.messages)
    received = [rcpt.lower() for message in messages for rcpt in message.rcpt_tos]
    assert sorted(received) == sorted(facts.valid_unique_emails)

    times = sorted(message.received_at for message in messages)
    steady = [at for at in times if times[0] + 1.0 <= at <= times[-1] - 1.0]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    busiest_steady, busiest_overall = _busiest_window(steady), _busiest_window(times)
    print(
        f"\nglobal rate {rate}/s over 4 processes: achieved {achieved:.2f}/s "
        f"({(achieved / rate - 1) * 100:+.1f}%) over {steady[-1] - steady[0]:.1f} s steady; "
        f"busiest 1 s window {busiest_steady} steady, {busiest_overall} overall "
        f"(limit {rate} + burst {burst}); {smtp_server.connections} SMTP connections"
    )
    assert achieved == pytest.approx(rate, rel=0.10)
    # Permits keep every second to rate + burst exactly (see the test on their Redis times);
    # the server sees each message one send later. That latency varies: a worker process's
    # first sends open connections while it starts up (25-45 ms instead of 2-8), and on a
    # loaded machine any process, the server's included, may stall for a moment. A quarter of
    # a second of such jitter is allowed for; a per-process limit would show four times over.
    assert busiest_overall <= rate + burst + rate / 4
    # Each worker process opens its own connections: more than one process's worth means the
    # rate was shared, not the work of a single process.
    assert smtp_server.connections > 4
