"""The poll loop with a real Redis and the fake upstream: intervals, ticks, failures, health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, cast

import pytest
from redis.asyncio import Redis

from aggregator.config import ScheduleSettings, Settings
from aggregator.fetch import Executor
from aggregator.health import assess
from aggregator.pools import Pools
from aggregator.runtime import Runtime
from aggregator.schedule import Poller, refresh_interval, start_scheduler
from aggregator.store import ProviderRecord, Store, Tally
from providers.base import NetworkStatus, Provider, ProviderRequest, rebase
from providers.hackernews import HackerNews
from providers.hatena import Hatena
from tests.fakeupstream import FakeUpstream, Fault

SettingsFactory = Callable[..., Settings]
PAGE = "https://example.com/post"
DAY = 86_400.0


class NeedsKey(Provider):
    """Test-only: a provider that cannot run without an app id and secret."""

    name: ClassVar[str] = "needskey"
    label: ClassVar[str] = "Needs Key"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    endpoint: ClassVar[str] = "https://needskey.example/count"
    credentials: ClassVar[tuple[str, ...]] = ("app_id", "app_secret")

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        return ProviderRequest(url=rebase(cls.endpoint, base_url))

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        return {}


# --- refresh_interval ---


def test_refresh_interval_tiers_at_boundaries() -> None:
    conf = ScheduleSettings(
        fresh_age=100, fresh_interval=1, recent_age=1000, recent_interval=10, old_interval=100
    )
    assert refresh_interval(0, conf) == 1
    assert refresh_interval(99.999, conf) == 1
    assert refresh_interval(100, conf) == 10
    assert refresh_interval(999.999, conf) == 10
    assert refresh_interval(1000, conf) == 100
    assert refresh_interval(1e9, conf) == 100


def test_refresh_interval_defaults() -> None:
    conf = ScheduleSettings()
    assert refresh_interval(DAY - 1, conf) == 1_800
    assert refresh_interval(DAY, conf) == 21_600
    assert refresh_interval(5 * DAY - 1, conf) == 21_600
    assert refresh_interval(5 * DAY, conf) == 432_000


# --- ticks ---


async def test_tick_stores_counts_and_reschedules(
    runtime: Runtime, fake_upstream: FakeUpstream, redis: Redis
) -> None:
    store, conf = runtime.store, runtime.settings.schedule
    assert sorted(runtime.poller.provider_names) == ["hackernews", "hatena"]
    await store.track(PAGE, time.time())
    fake_upstream.set_count("hackernews", PAGE, 12)
    fake_upstream.set_count("hatena", PAGE, 5)

    before = time.time()
    assert await runtime.poller.tick() == 1
    after = time.time()

    record = await store.get(PAGE)
    assert record is not None
    assert record.networks["hackernews"].count == 12
    assert record.networks["hatena"].count == 5
    assert record.total == 17
    fetched = record.networks["hatena"].fetched_at
    # The store keeps whole seconds.
    assert fetched is not None and int(before) <= fetched <= after
    due = await store.due_at(PAGE)
    assert due is not None
    assert before + conf.fresh_interval <= due <= after + conf.fresh_interval
    assert await store.scheduler_alive() is True

    assert await runtime.poller.tick() == 0
    assert len(fake_upstream.calls("hackernews")) == 1
    assert len(fake_upstream.calls("hatena")) == 1
    health = await store.providers(["hackernews", "hatena"])
    assert health["hackernews"].consecutive_failures == 0
    assert health["hatena"].last_success_at is not None


async def test_tick_uses_age_since_tracked(
    runtime: Runtime, fake_upstream: FakeUpstream, redis: Redis
) -> None:
    store, conf = runtime.store, runtime.settings.schedule
    now = time.time()
    await store.track(PAGE + "/old", now - 30 * DAY)
    await store.track(PAGE + "/recent", now - 2 * DAY)
    before = time.time()
    assert await runtime.poller.tick() == 2
    after = time.time()
    old = await store.due_at(PAGE + "/old")
    recent = await store.due_at(PAGE + "/recent")
    assert old is not None and recent is not None
    assert before + conf.old_interval <= old <= after + conf.old_interval
    assert before + conf.recent_interval <= recent <= after + conf.recent_interval


async def test_tick_claims_at_most_claim_size(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, store: Store
) -> None:
    settings = make_settings(schedule={"claim_size": 30, "retry_interval": 0.5})
    now = time.time()
    for i in range(70):
        await store.track(f"{PAGE}/{i}", now)
    async with Pools() as client:
        poller = Poller(
            store,
            Executor(client, settings),
            {"hatena": Hatena},
            settings,
        )
        assert [await poller.tick() for _ in range(4)] == [30, 30, 10, 0]
    assert len(fake_upstream.calls("hatena")) == 3


async def test_two_pollers_never_fetch_a_url_twice(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, store: Store
) -> None:
    settings = make_settings(schedule={"claim_size": 7, "retry_interval": 0.5})
    urls = [f"{PAGE}/{i}" for i in range(40)]
    now = time.time()
    for i, url in enumerate(urls):
        await store.track(url, now)
        fake_upstream.set_count("hackernews", url, i + 1)
    async with Pools() as a, Pools() as b:
        pollers = [
            Poller(store, Executor(c, settings), {"hackernews": HackerNews}, settings)
            for c in (a, b)
        ]
        claimed = 0
        for _ in range(5):
            got = await asyncio.gather(*(p.tick() for p in pollers))
            claimed += sum(got)
    assert claimed == 40
    queries = [dict(c.params)["query"] for c in fake_upstream.calls("hackernews")]
    assert sorted(queries) == sorted(urls)
    for i, url in enumerate(urls):
        record = await store.get(url)
        assert record is not None and record.total == i + 1


async def test_failing_provider_keeps_counts_and_retries_soon(
    runtime: Runtime, fake_upstream: FakeUpstream, redis: Redis
) -> None:
    store, conf = runtime.store, runtime.settings.schedule
    await store.track(PAGE, time.time())
    fake_upstream.set_count("hackernews", PAGE, 10)
    fake_upstream.set_count("hatena", PAGE, 20)
    assert await runtime.poller.tick() == 1

    fake_upstream.set_fault("hatena", Fault("status", status=503))
    fake_upstream.set_count("hatena", PAGE, 3)
    fake_upstream.set_count("hackernews", PAGE, 15)
    await store.refresh([PAGE], time.time())
    before = time.time()
    assert await runtime.poller.tick() == 1
    after = time.time()

    record = await store.get(PAGE)
    assert record is not None
    assert record.networks["hackernews"].count == 15
    assert record.networks["hatena"].count == 20
    assert record.networks["hatena"].seen == 20
    assert record.networks["hatena"].failed_at is not None
    assert record.networks["hackernews"].failed_at is None
    assert record.total == 35
    due = await store.due_at(PAGE)
    assert due is not None
    assert conf.retry_interval == 0.5
    assert before + conf.retry_interval <= due <= after + conf.retry_interval

    health = await store.providers(["hatena", "hackernews"])
    assert health["hatena"].consecutive_failures == 1
    assert health["hatena"].last_error is not None
    assert "503" in health["hatena"].last_error
    assert health["hackernews"].consecutive_failures == 0


# --- health ---


async def test_health_follows_ticks(
    runtime: Runtime, fake_upstream: FakeUpstream, store: Store
) -> None:
    settings = runtime.settings
    assert settings.health.failing_after == 2

    async def hatena_state() -> str:
        record = (await store.providers(["hatena"]))["hatena"]
        return assess(Hatena, settings, record, Tally(), time.time()).state

    async def tick_now() -> None:
        await store.refresh([PAGE], time.time())
        assert await runtime.poller.tick() == 1

    assert await hatena_state() == "pending"
    await store.track(PAGE, time.time())
    fake_upstream.set_fault("hatena", Fault("garbage"))
    await tick_now()
    assert await hatena_state() == "pending"  # never worked, but one failure is not failing yet
    fake_upstream.set_fault("hatena", None)
    await tick_now()
    assert await hatena_state() == "ok"

    fake_upstream.set_fault("hatena", Fault("garbage"))
    await tick_now()
    assert await hatena_state() == "ok"  # one failure after a success is not yet failing
    await tick_now()
    assert await hatena_state() == "failing"
    record = (await store.providers(["hatena"]))["hatena"]
    assert record.consecutive_failures == 2
    assert (
        assess(Hatena, settings, record, Tally(), time.time()).reason
        == "the last 2 requests failed"
    )
    await tick_now()
    assert await hatena_state() == "failing"

    fake_upstream.set_fault("hatena", None)
    await tick_now()
    assert await hatena_state() == "ok"
    assert (await store.providers(["hatena"]))["hatena"].consecutive_failures == 0
    hn = (await store.providers(["hackernews"]))["hackernews"]
    assert assess(HackerNews, settings, hn, Tally(), time.time()).state == "ok"


def test_health_disabled_and_unconfigured(make_settings: SettingsFactory) -> None:
    failing = ProviderRecord(last_failure_at=1.0, consecutive_failures=10)
    off = make_settings(providers={"hatena": {"enabled": False}})
    assert assess(Hatena, off, failing, Tally(), time.time()).state == "disabled"
    assert assess(Hatena, off, ProviderRecord(), Tally(), time.time()).state == "disabled"
    assert assess(HackerNews, off, ProviderRecord(), Tally(), time.time()).state == "pending"

    bare = make_settings()
    verdict = assess(NeedsKey, bare, failing, Tally(), time.time())
    assert verdict.state == "unconfigured"
    assert "FLARES_PROVIDERS__NEEDSKEY__APP_ID" in verdict.reason
    assert "FLARES_PROVIDERS__NEEDSKEY__APP_SECRET" in verdict.reason

    half = make_settings(providers={"needskey": {"app_id": "123"}})
    verdict = assess(NeedsKey, half, ProviderRecord(), Tally(), time.time())
    assert verdict.state == "unconfigured"
    assert "APP_SECRET" in verdict.reason
    assert "APP_ID" not in verdict.reason
    assert "123" not in verdict.reason

    full = make_settings(providers={"needskey": {"app_id": "123", "app_secret": "shh"}})
    assert assess(NeedsKey, full, ProviderRecord(), Tally(), time.time()).state == "pending"
    assert assess(NeedsKey, full, failing, Tally(), time.time()).state == "failing"


@pytest.mark.parametrize(
    ("record", "state"),
    [
        (ProviderRecord(), "pending"),
        (ProviderRecord(last_success_at=5.0), "ok"),
        (ProviderRecord(last_failure_at=5.0, consecutive_failures=1), "pending"),
        (ProviderRecord(last_success_at=4.0, last_failure_at=5.0, consecutive_failures=1), "ok"),
        (ProviderRecord(last_failure_at=5.0, consecutive_failures=2), "failing"),
    ],
)
def test_health_states_from_records(
    make_settings: SettingsFactory, record: ProviderRecord, state: str
) -> None:
    assert assess(Hatena, make_settings(), record, Tally(), time.time()).state == state


async def test_a_skipped_tick_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A drain longer than the tick period skips runs by design: no warning for each."""
    release = asyncio.Event()

    class Slow:
        async def drain(self) -> int:
            await release.wait()
            return 0

    caplog.set_level(logging.INFO, logger="apscheduler")
    scheduler = start_scheduler(cast(Poller, Slow()), 0.05)
    try:
        await asyncio.sleep(0.3)
    finally:
        release.set()
        scheduler.shutdown(wait=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("tick" in r.getMessage() for r in caplog.records)
