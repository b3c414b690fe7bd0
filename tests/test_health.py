"""The health rules, and the request stats every worker records in Redis for them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from aggregator.config import Settings
from aggregator.gate import Gate, Limits, Pass, Report
from aggregator.health import assess, latency_quantile, suspicion
from aggregator.store import LATENCY_BOUNDS, ProviderRecord, Store, Tally
from providers.googleplus import GooglePlus
from providers.hatena import Hatena
from tests.conftest import SettingsFactory

T0 = 1_800_000_000.0
LIMITS = Limits(
    budget=1000, window=3600.0, concurrency=50, breaker_after=5, breaker_cooldown=30, slot_seconds=9
)
HEALTHY = ProviderRecord(last_success_at=T0 - 10, ok_since=T0 - 500)
QUIET = Tally()


def state(
    settings: Settings, record: ProviderRecord, hour: Tally = QUIET
) -> tuple[str, float | None]:
    verdict = assess(Hatena, settings, record, hour, T0)
    return verdict.state, verdict.since


def test_states_in_order_of_precedence(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    bad_hour = Tally(ok=1, failed=9, first_failure_at=T0 - 600)
    failing = ProviderRecord(
        last_success_at=T0 - 900,
        last_failure_at=T0 - 5,
        consecutive_failures=2,
        failing_since=T0 - 60,
    )
    open_breaker = ProviderRecord(
        consecutive_failures=5, breaker_until=T0 + 30, breaker_since=T0 - 20, last_success_at=1.0
    )
    throttled = ProviderRecord(
        throttled_until=T0 + 60, throttled_since=T0 - 30, breaker_until=T0 + 30
    )
    assert state(settings, throttled, bad_hour) == ("throttled", T0 - 30)
    assert state(settings, open_breaker, bad_hour) == ("circuit-open", T0 - 20)
    assert state(settings, failing, bad_hour) == ("failing", T0 - 60)
    assert state(settings, ProviderRecord(), bad_hour) == ("pending", None)
    assert state(settings, HEALTHY, bad_hour) == ("degraded", T0 - 600)
    assert state(settings, HEALTHY) == ("ok", T0 - 500)
    off = make_settings(providers={"hatena": {"enabled": False}})
    assert state(off, throttled, bad_hour) == ("disabled", None)


def test_a_network_served_from_clicks_is_not_called(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    throttled = ProviderRecord(throttled_until=T0 + 60, throttled_since=T0 - 30)
    assert assess(Hatena, settings, throttled, QUIET, T0, "clicks").state == "clicks"
    assert assess(Hatena, settings, throttled, QUIET, T0, "max").state == "throttled"
    off = make_settings(providers={"hatena": {"enabled": False}})
    assert assess(Hatena, off, HEALTHY, QUIET, T0, "clicks").state == "disabled"


def test_retired_wins_even_while_a_mirror_answers(make_settings: SettingsFactory) -> None:
    settings = make_settings(providers={"googleplus": {"enabled": True}})
    verdict = assess(GooglePlus, settings, HEALTHY, Tally(ok=50), T0)
    assert verdict.state == "retired"
    assert GooglePlus.status_since is not None
    assert verdict.reason.endswith(f"on {GooglePlus.status_since.isoformat()}; counts are kept")
    retired_at = datetime(*GooglePlus.status_since.timetuple()[:3], tzinfo=UTC).timestamp()
    assert verdict.since == retired_at


@pytest.mark.parametrize(
    ("ok", "failed", "neutral", "expected"),
    [
        (4, 1, 0, "ok"),  # 20 %: not more than the share
        (3, 2, 0, "degraded"),
        (2, 2, 0, "ok"),  # 50 %, but fewer than min_requests answered
        (2, 3, 9, "degraded"),  # throttling is neither success nor failure
        (10, 0, 40, "ok"),
    ],
)
def test_degraded_by_the_share_of_failed_requests_in_the_hour(
    make_settings: SettingsFactory, ok: int, failed: int, neutral: int, expected: str
) -> None:
    hour = Tally(ok=ok, failed=failed, neutral=neutral, first_failure_at=T0 - 60)
    assert state(make_settings(), HEALTHY, hour)[0] == expected


def test_suspect_when_counts_drop_to_zero_or_every_request_is_a_404(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    assert suspicion(Tally(ok=100, had=80, zeroed=39), settings) is None
    assert suspicion(Tally(ok=100, had=80, zeroed=40), settings) == (
        "answered 0 for 40 of 80 URLs that had counts in the last hour"
    )
    assert suspicion(Tally(ok=4, had=4, zeroed=4), settings) is None, "too few to tell"
    assert suspicion(Tally(failed=6, not_found=6), settings) == (
        "every request in the last hour (6) got HTTP 404"
    )
    assert suspicion(Tally(ok=1, failed=6, not_found=6), settings) is None


def test_latency_quantiles_interpolate_in_the_bucket() -> None:
    # 10 requests up to 25 ms, 10 up to 50 ms: the median is the first bucket's top.
    two = [10, 10] + [0] * (len(LATENCY_BOUNDS) - 1)
    hour = Tally(latencies=tuple(two))
    assert latency_quantile(hour, 0.5) == pytest.approx(0.025)
    assert latency_quantile(hour, 0.75) == pytest.approx(0.025 + 0.025 * 5 / 10)
    assert latency_quantile(hour, 0.95) == pytest.approx(0.025 + 0.025 * 9 / 10)
    assert latency_quantile(Tally(), 0.5) is None
    slow = Tally(latencies=(0,) * len(LATENCY_BOUNDS) + (3,))
    assert latency_quantile(slow, 0.5) == LATENCY_BOUNDS[-1]


async def request(gate: Gate, now: float, report: Report) -> None:
    permit = await gate.enter("hatena", 1, LIMITS, now)
    assert isinstance(permit, Pass)
    await gate.leave("hatena", permit, report, LIMITS, now)


async def test_every_request_lands_in_the_hour_and_the_lifetime(redis: Redis, store: Store) -> None:
    gate = Gate(redis)
    await request(gate, T0, Report("ok", latency=0.03))
    await request(gate, T0 + 1, Report("failed", "HTTP 404", "http", 404, latency=0.2))
    await request(gate, T0 + 61, Report("neutral", "HTTP 429", "throttled", 429, latency=40.0))
    hour = (await store.stats(["hatena"], T0 + 61))["hatena"].hour
    assert (hour.ok, hour.failed, hour.neutral, hour.not_found) == (1, 1, 1, 1)
    assert hour.latencies[1] == 1 and hour.latencies[3] == 1 and hour.latencies[-1] == 1
    assert hour.latency_sum == pytest.approx(40.23)
    assert hour.first_failure_at == (T0 + 1) // 60 * 60
    record = (await store.providers(["hatena"]))["hatena"]
    assert (record.last_error_kind, record.last_error_status) == ("throttled", 429)
    assert (record.ok_since, record.failing_since) == (T0, T0 + 1), "a neutral moves neither"

    # An hour on, the first minute's slot is reused: it leaves the hour, not the lifetime.
    await request(gate, T0 + 3600, Report("ok", latency=0.01))
    stats = (await store.stats(["hatena"], T0 + 3600))["hatena"]
    assert (stats.hour.ok, stats.hour.failed, stats.hour.neutral) == (1, 0, 1)
    assert (stats.lifetime.ok, stats.lifetime.failed, stats.lifetime.neutral) == (2, 1, 1)
    assert (await store.stats(["hatena"], T0 + 7200))["hatena"].hour == Tally()


async def test_failing_and_ok_since_mark_where_each_run_began(redis: Redis, store: Store) -> None:
    gate = Gate(redis)
    await request(gate, T0, Report("ok"))
    await request(gate, T0 + 10, Report("failed", "HTTP 500", "http", 500))
    await request(gate, T0 + 20, Report("failed", "HTTP 500", "http", 500))
    record = (await store.providers(["hatena"]))["hatena"]
    assert (record.failing_since, record.ok_since) == (T0 + 10, T0)
    await request(gate, T0 + 30, Report("ok"))
    await request(gate, T0 + 40, Report("ok"))
    record = (await store.providers(["hatena"]))["hatena"]
    assert (record.failing_since, record.ok_since) == (None, T0 + 30)


async def test_answers_of_zero_after_a_count_are_tallied(store: Store) -> None:
    urls = [f"https://example.com/{i}" for i in range(4)]
    await store.track_many(urls, T0)
    await store.merge_counts("hatena", dict.fromkeys(urls, 5), T0)
    hour = (await store.stats(["hatena"], T0))["hatena"].hour
    assert (hour.had, hour.zeroed) == (0, 0), "first counts had nothing before them"
    await store.merge_counts("hatena", {urls[0]: 0, urls[1]: 0, urls[2]: 6, urls[3]: 5}, T0 + 1)
    hour = (await store.stats(["hatena"], T0 + 1))["hatena"].hour
    assert (hour.had, hour.zeroed) == (4, 2)
    record = await store.get(urls[0])
    assert record is not None and record.networks["hatena"].count == 5, "never lowered"


async def test_throttled_since_holds_while_the_throttle_is_extended(store: Store) -> None:
    await store.throttle("hatena", T0 + 60, T0)
    await store.throttle("hatena", T0 + 120, T0 + 30)
    record = (await store.providers(["hatena"]))["hatena"]
    assert (record.throttled_since, record.throttled_until) == (T0, T0 + 120)
    await store.throttle("hatena", T0 + 500, T0 + 400)
    record = (await store.providers(["hatena"]))["hatena"]
    assert record.throttled_since == T0 + 400
