"""The shared gate against a real Redis: budget, concurrency, circuit breaker, bookkeeping."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from aggregator.gate import Gate, Limits, Pass, Refused, Report
from aggregator.store import Store

T0 = 1_800_000_000.0
LIMITS = Limits(
    budget=5, window=60.0, concurrency=2, breaker_after=3, breaker_cooldown=30.0, slot_seconds=10.0
)


@pytest.fixture
def gate(redis: Redis) -> Gate:
    return Gate(redis)


async def enter(gate: Gate, now: float, cost: int = 1, limits: Limits = LIMITS) -> Pass | Refused:
    return await gate.enter("hatena", cost, limits, now)


async def passes(gate: Gate, now: float, cost: int = 1, limits: Limits = LIMITS) -> Pass:
    verdict = await enter(gate, now, cost, limits)
    assert isinstance(verdict, Pass), verdict
    return verdict


async def test_budget_is_spent_then_refused_with_the_wait(gate: Gate) -> None:
    wide = Limits(**{**LIMITS.__dict__, "concurrency": 100})
    for _ in range(5):
        await passes(gate, T0, limits=wide)
    refused = await enter(gate, T0 + 1, limits=wide)
    assert isinstance(refused, Refused)
    assert refused.reason == "budget"
    assert 0 < refused.wait <= 60


async def test_the_previous_window_fades(gate: Gate) -> None:
    wide = Limits(**{**LIMITS.__dict__, "concurrency": 100})
    window_start = 60.0 * 30_000_000
    for _ in range(5):
        await passes(gate, window_start + 59, limits=wide)
    # Half way into the next window half of the previous count still weighs: 2.5 used, 2 fit.
    await passes(gate, window_start + 90, limits=wide)
    await passes(gate, window_start + 90, limits=wide)
    assert isinstance(await enter(gate, window_start + 90, limits=wide), Refused)


async def test_a_batch_costs_its_urls_atomically(gate: Gate) -> None:
    wide = Limits(**{**LIMITS.__dict__, "concurrency": 100})
    await passes(gate, T0, cost=4, limits=wide)
    refused = await enter(gate, T0, cost=2, limits=wide)
    assert isinstance(refused, Refused) and refused.reason == "budget"
    await passes(gate, T0, cost=1, limits=wide)


async def test_concurrency_is_shared_and_slots_expire(gate: Gate) -> None:
    first = await passes(gate, T0)
    await passes(gate, T0)
    busy = await enter(gate, T0)
    assert isinstance(busy, Refused) and busy.reason == "busy"
    await gate.leave("hatena", first, Report("ok", ""), LIMITS, T0)
    await passes(gate, T0)
    # A process that died holding its slot loses it when the slot expires.
    assert isinstance(await enter(gate, T0 + LIMITS.slot_seconds + 1), Pass)


async def test_concurrent_entries_never_exceed_the_limit(gate: Gate) -> None:
    verdicts = await asyncio.gather(*(enter(gate, T0) for _ in range(20)))
    assert sum(isinstance(v, Pass) for v in verdicts) == LIMITS.concurrency


async def test_breaker_opens_half_opens_and_closes(gate: Gate, store: Store) -> None:
    for i in range(3):
        permit = await passes(gate, T0 + i)
        await gate.leave("hatena", permit, Report("failed", f"HTTP 503 #{i}"), LIMITS, T0 + i)
    record = (await store.providers(["hatena"]))["hatena"]
    assert record.breaker(T0 + 3) == "open"
    assert record.breaker_since == T0 + 2
    assert record.consecutive_failures == 3
    assert record.last_error == "HTTP 503 #2"
    refused = await enter(gate, T0 + 10)
    assert isinstance(refused, Refused) and refused.reason == "breaker"
    assert refused.wait == pytest.approx(22)

    # Cool-down over: exactly one probe goes; others wait for its verdict.
    assert record.breaker(T0 + 33) == "half-open"
    probe = await passes(gate, T0 + 33)
    held = await enter(gate, T0 + 33)
    assert isinstance(held, Refused) and held.reason == "breaker"
    # A failed probe opens the breaker again for a whole cool-down.
    await gate.leave("hatena", probe, Report("failed", "still down"), LIMITS, T0 + 34)
    assert isinstance(await enter(gate, T0 + 40), Refused)
    probe = await passes(gate, T0 + 65)
    await gate.leave("hatena", probe, Report("ok", ""), LIMITS, T0 + 66)
    record = (await store.providers(["hatena"]))["hatena"]
    assert record.breaker(T0 + 66) == "closed"
    assert (record.consecutive_failures, record.last_success_at) == (0, T0 + 66)
    assert record.last_error == "still down", "the last error stays visible after recovery"


async def test_neutral_results_move_no_breaker(gate: Gate, store: Store) -> None:
    for i in range(5):
        permit = await passes(gate, T0 + i)
        await gate.leave("hatena", permit, Report("neutral", ""), LIMITS, T0 + i)
    record = (await store.providers(["hatena"]))["hatena"]
    assert (record.consecutive_failures, record.breaker(T0 + 5)) == (0, "closed")
    assert record.last_error is None
    permit = await passes(gate, T0 + 120)  # a new budget window
    await gate.leave("hatena", permit, Report("neutral", "HTTP 429"), LIMITS, T0 + 120)
    record = (await store.providers(["hatena"]))["hatena"]
    assert (record.last_error, record.consecutive_failures) == ("HTTP 429", 0)


async def test_throttle_and_rejection_hold_requests_back(gate: Gate, store: Store) -> None:
    await store.throttle("hatena", T0 + 20, T0)
    throttled = await enter(gate, T0)
    assert isinstance(throttled, Refused) and throttled.reason == "throttled"
    assert throttled.wait == pytest.approx(20)
    await passes(gate, T0 + 21)

    keyed = Limits(**{**LIMITS.__dict__, "fingerprint": "abc"})
    await store.reject("hatena", "abc", "token refused")
    refused = await enter(gate, T0 + 30, limits=keyed)
    assert isinstance(refused, Refused) and refused.reason == "rejected"
    new_keys = Limits(**{**LIMITS.__dict__, "fingerprint": "def"})
    await passes(gate, T0 + 30, limits=new_keys)
