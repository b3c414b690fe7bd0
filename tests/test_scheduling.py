"""Scheduling under budgets and faults: the poller and gate, a real Redis, the fake upstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from aggregator.runtime import Runtime, open_runtime
from aggregator.store import Store
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)
from tests.conftest import SettingsFactory
from tests.fakeupstream import FakeUpstream, Fault

PAGE = "https://example.com/post"
RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]


@pytest.fixture
def make_runtime(make_settings: SettingsFactory, redis_url: str, redis: Redis) -> RuntimeFactory:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Runtime]:
        async with open_runtime(make_settings(**overrides), redis_url) as runtime:
            yield runtime

    return make


async def total_of(store: Store) -> int:
    record = await store.get(PAGE)
    assert record is not None
    return record.total


def pages(n: int) -> list[str]:
    return [f"https://example.com/p/{i}" for i in range(n)]


async def due_in(redis: Redis, url: str) -> float:
    score = await Store(redis).due_at(url)
    assert score is not None
    return float(score) - time.time()


async def test_jitter_spreads_urls_tracked_together(
    make_runtime: RuntimeFactory, redis: Redis
) -> None:
    schedule = {"fresh_interval": 1000.0, "jitter": 0.1, "retries": 0}
    async with make_runtime(schedule=schedule) as runtime:
        for url in pages(40):
            await runtime.store.track(url, time.time())
        await runtime.poller.tick()
        waits = [await due_in(redis, url) for url in pages(40)]
    assert all(895 <= w <= 1100 for w in waits)
    assert len({round(w) for w in waits}) > 20, "not all in step"


async def test_a_url_that_moved_comes_back_sooner(
    make_runtime: RuntimeFactory, redis: Redis, fake_upstream: FakeUpstream
) -> None:
    moving, still = pages(2)
    schedule = {"fresh_interval": 1000.0, "jitter": 0.0, "moved_factor": 0.5, "min_interval": 100.0}
    async with make_runtime(schedule=schedule) as runtime:
        fake_upstream.set_count("hackernews", moving, 5)
        for url in (moving, still):
            await runtime.store.track(url, time.time())
        await runtime.poller.tick()  # a first count is not a move
        first = (await due_in(redis, moving), await due_in(redis, still))
        fake_upstream.set_count("hackernews", moving, 9)
        await runtime.store.refresh([moving, still], time.time())
        await runtime.poller.tick()
        second = (await due_in(redis, moving), await due_in(redis, still))
        await runtime.store.refresh([moving, still], time.time())
        await runtime.poller.tick()  # nothing moved this time
        third = await due_in(redis, moving)
    assert first == pytest.approx((1000, 1000), abs=5)
    assert second == pytest.approx((500, 1000), abs=5)
    assert third == pytest.approx(1000, abs=5)


async def test_the_floor_bounds_how_soon(
    make_runtime: RuntimeFactory, redis: Redis, fake_upstream: FakeUpstream
) -> None:
    schedule = {"fresh_interval": 1000.0, "jitter": 0.0, "moved_factor": 0.1, "min_interval": 600.0}
    async with make_runtime(schedule=schedule) as runtime:
        await runtime.store.track(PAGE, time.time())
        await runtime.poller.tick()
        fake_upstream.set_count("hatena", PAGE, 3)
        await runtime.store.refresh([PAGE], time.time())
        await runtime.poller.tick()
        assert await due_in(redis, PAGE) == pytest.approx(600, abs=5)


async def test_a_provider_out_of_budget_leaves_its_urls_due_and_spends_no_other(
    make_runtime: RuntimeFactory, redis: Redis, fake_upstream: FakeUpstream
) -> None:
    urls = pages(3)
    providers = {"hackernews": {"budget_requests": 1, "budget_window": 30.0}}
    schedule = {"fresh_interval": 1000.0, "jitter": 0.0, "retries": 0}
    async with make_runtime(providers=providers, schedule=schedule) as runtime:
        for url in urls:
            fake_upstream.set_count("hackernews", url, 4)
            await runtime.store.track(url, time.time())
        await runtime.poller.tick()
        records = {u: await runtime.store.get(u) for u in urls}
        fetched = [u for u, r in records.items() if r and r.networks.get("hackernews")]
        held = [u for u in urls if u not in fetched]
        assert len(fetched) == 1 and len(held) == 2
        for url in held:
            # Back when the budget allows, not after the full interval; and not marked failed.
            assert 0 < await due_in(redis, url) <= 31
            record = records[url]
            assert record is not None
            assert "hackernews" not in record.networks
        assert await due_in(redis, fetched[0]) == pytest.approx(1000, abs=5)
        health = (await runtime.store.providers(["hackernews"]))["hackernews"]
        assert health.consecutive_failures == 0
        hatena_calls = len(fake_upstream.calls("hatena"))
        # The early retry asks hackernews only: hatena answered for these URLs a moment ago.
        await runtime.store.reschedule(dict.fromkeys(held, 0))
        await runtime.poller.tick()
        assert len(fake_upstream.calls("hatena")) == hatena_calls
        assert len(fake_upstream.calls("hackernews")) == 1, "still out of budget: no request"


async def test_forced_refresh_asks_every_network_again(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    async with make_runtime() as runtime:
        await runtime.store.track(PAGE, time.time())
        await runtime.poller.tick()
        fake_upstream.set_count("hatena", PAGE, 9)
        await runtime.store.reschedule({PAGE: 0})
        await runtime.poller.tick()
        assert await total_of(runtime.store) == 0
        await runtime.store.refresh([PAGE], time.time())
        await runtime.poller.tick()
        assert await total_of(runtime.store) == 9


async def test_transient_errors_are_retried_with_backoff_and_4xx_are_not(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    schedule = {"retries": 2, "backoff": 0.01, "backoff_max": 0.02}
    async with make_runtime(schedule=schedule) as runtime:
        await runtime.store.track(PAGE, time.time())
        fake_upstream.set_fault("hackernews", Fault("status", status=503))
        fake_upstream.set_fault("hatena", Fault("status", status=404))
        await runtime.poller.tick()
    assert len(fake_upstream.calls("hackernews")) == 3
    assert len(fake_upstream.calls("hatena")) == 1


async def test_429_then_500s_then_timeouts_then_recovery(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream, redis: Redis
) -> None:
    providers = {"hatena": {"timeout": 0.3}}
    schedule = {"retries": 0, "retry_interval": 0.05, "fresh_interval": 1000.0, "jitter": 0.0}
    health = {"breaker_after": 3, "breaker_cooldown": 1.0, "failing_after": 2}
    async with make_runtime(providers=providers, schedule=schedule, health=health) as runtime:
        store, poller = runtime.store, runtime.poller
        fake_upstream.set_count("hatena", PAGE, 7)
        await store.track(PAGE, time.time())
        await poller.tick()
        assert await total_of(store) == 7

        async def tick_now() -> None:
            await store.refresh([PAGE], time.time())
            await poller.tick()

        def hatena_calls() -> int:
            return len(fake_upstream.calls("hatena"))

        # 429 with Retry-After: 1 s during which not one request goes out.
        fake_upstream.set_fault("hatena", Fault("rate_limit", retry_after=1))
        await tick_now()
        throttled_at, calls = time.monotonic(), hatena_calls()
        while time.monotonic() - throttled_at < 0.8:
            await tick_now()
        assert hatena_calls() == calls
        record = (await store.providers(["hatena"]))["hatena"]
        assert record.throttled_until is not None

        # Then 500s: the breaker opens after 3 in a row and stops the calls.
        fake_upstream.set_fault("hatena", Fault("status", status=500))
        while time.monotonic() - throttled_at < 1.1:
            await tick_now()
        for _ in range(5):
            await tick_now()
        record = (await store.providers(["hatena"]))["hatena"]
        assert record.breaker(time.time()) == "open"
        opened_calls = hatena_calls()
        for _ in range(5):
            await tick_now()
        assert hatena_calls() == opened_calls, "an open breaker sends nothing"

        # Then timeouts: after the cool-down one probe goes out, times out, and re-opens it.
        fake_upstream.set_fault("hatena", Fault("timeout", seconds=1.0))
        record = (await store.providers(["hatena"]))["hatena"]
        assert record.breaker_until is not None
        while time.time() < record.breaker_until:
            await tick_now()
        await tick_now()
        assert hatena_calls() == opened_calls + 1, "half-open lets exactly one probe out"
        record = (await store.providers(["hatena"]))["hatena"]
        assert record.breaker(time.time()) == "open"
        assert "no answer" in (record.last_error or "")
        assert await total_of(store) == 7

        # The network recovers: the next probe closes the breaker and counts flow again.
        fake_upstream.set_fault("hatena", None)
        fake_upstream.set_count("hatena", PAGE, 8)
        assert record.breaker_until is not None
        while time.time() < record.breaker_until:
            await tick_now()
        await tick_now()
        record = (await store.providers(["hatena"]))["hatena"]
        assert record.breaker(time.time()) == "closed"
        assert await total_of(store) == 8
