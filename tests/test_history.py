"""Count history against a real Redis: what a merge writes, the JSON series, the trend badge."""

from __future__ import annotations

import random
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from aggregator.store import HOURLY_SECONDS, MAX_COUNT, Series, Store, history_location
from tests.test_api import PAGE, ApiFactory, assert_error, make_api
from tests.test_badge_api import SVG, parse_badge

# Imported for pytest: the fixture is found by its name in this module.
__all__ = ["make_api"]

DAY, HOUR = 86_400, 3_600
# The start of a UTC day, so that offsets below land on known days and hours.
D0 = 19_700
T0 = float(D0 * DAY)


async def raw_history(redis: Redis, url: str = PAGE) -> bytes | None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.execute_command("HGET", *history_location(url), **{NEVER_DECODE: True})
        [raw] = await pipe.execute()
    return raw  # type: ignore[no-any-return]


async def test_a_point_per_day_per_network_where_the_count_rose(store: Store) -> None:
    await store.track(PAGE, T0 - 3 * DAY)
    await store.merge_counts("hatena", {PAGE: 5}, T0 + 10)
    await store.merge_counts("hatena", {PAGE: 7}, T0 + 5 * HOUR)
    await store.merge_counts("hackernews", {PAGE: 2}, T0 + 6 * HOUR)
    await store.merge_counts("hatena", {PAGE: 7}, T0 + DAY + 10)
    await store.merge_counts("hatena", {PAGE: 9}, T0 + 3 * DAY)
    assert await store.history(PAGE) == {
        "hackernews": Series(daily=[(D0, 2)]),
        "hatena": Series(daily=[(D0, 7), (D0 + 3, 9)]),
    }


async def test_no_write_unless_the_served_count_rose(store: Store, redis: Redis) -> None:
    await store.track(PAGE, T0 - 3 * DAY)
    await store.merge_counts("hatena", {PAGE: 5}, T0)
    before = await raw_history(redis)
    # The same count a day later, and a lower one: the network's answer, not the served count.
    await store.merge_counts("hatena", {PAGE: 5}, T0 + DAY)
    await store.merge_counts("hatena", {PAGE: 3}, T0 + 2 * DAY)
    assert await raw_history(redis) == before
    assert (await store.history(PAGE))["hatena"].daily == [(D0, 5)]


async def test_a_first_count_of_zero_is_a_point(store: Store) -> None:
    await store.track(PAGE, T0 - 3 * DAY)
    await store.merge_counts("hatena", {PAGE: 0}, T0)
    assert (await store.history(PAGE))["hatena"].daily == [(D0, 0)]


async def test_hourly_points_only_in_the_first_48_hours(store: Store) -> None:
    tracked = T0 + 30 * 60
    await store.track(PAGE, tracked)
    hour = D0 * 24
    await store.merge_counts("hatena", {PAGE: 1}, tracked + 60)
    await store.merge_counts("hatena", {PAGE: 2}, tracked + 20 * 60)
    await store.merge_counts("hatena", {PAGE: 4}, tracked + 2 * HOUR)
    await store.merge_counts("hatena", {PAGE: 6}, tracked + HOURLY_SECONDS - 1)
    await store.merge_counts("hatena", {PAGE: 8}, tracked + HOURLY_SECONDS)
    series = (await store.history(PAGE))["hatena"]
    assert series.hourly == [(hour, 2), (hour + 2, 4), (hour + 48, 6)]
    assert series.daily == [(D0, 4), (D0 + 2, 8)]


async def test_days_are_bounded_and_the_oldest_value_carried(redis: Redis) -> None:
    store = Store(redis, history_days=5)
    await store.track(PAGE, T0)
    for day in range(10):
        await store.merge_counts("hatena", {PAGE: 10 + day}, T0 + day * DAY)
    series = (await store.history(PAGE))["hatena"]
    assert series.daily == [(D0 + day, 10 + day) for day in range(5, 10)]
    # The tracking day has left the window: its hours went with it.
    assert series.hourly == []
    # A point older than the window moves to its first day, where the count still held.
    await store.merge_counts("hatena", {PAGE: 30}, T0 + 20 * DAY)
    assert (await store.history(PAGE))["hatena"].daily == [(D0 + 16, 19), (D0 + 20, 30)]


async def test_a_fold_then_a_rise_the_same_day(redis: Redis) -> None:
    """The fold rewrites the point after the head; the newest point must still be found."""
    store = Store(redis, history_days=5)
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 10}, T0)
    await store.merge_counts("hatena", {PAGE: 20}, T0 + 6 * DAY)
    await store.merge_counts("hatena", {PAGE: 25}, T0 + 6 * DAY + HOUR)
    assert (await store.history(PAGE))["hatena"].daily == [(D0 + 2, 10), (D0 + 6, 25)]
    await store.merge_counts("hatena", {PAGE: 30}, T0 + 20 * DAY)
    await store.merge_counts("hatena", {PAGE: 31}, T0 + 20 * DAY + HOUR)
    assert (await store.history(PAGE))["hatena"].daily == [(D0 + 16, 25), (D0 + 20, 31)]


async def test_big_counts_and_a_count_an_admin_lowered(store: Store) -> None:
    await store.track(PAGE, T0 - 3 * DAY)
    await store.merge_counts("hatena", {PAGE: MAX_COUNT - 1}, T0)
    await store.merge_counts("hatena", {PAGE: MAX_COUNT}, T0 + HOUR)
    await store.merge_counts("hackernews", {PAGE: 500}, T0)
    await store.set_baselines([(PAGE, "hackernews", 10)], reset=True, now=T0 + DAY)
    await store.merge_counts("hackernews", {PAGE: 20}, T0 + 2 * DAY)
    history = await store.history(PAGE)
    assert history["hatena"].daily == [(D0, MAX_COUNT)]
    assert history["hackernews"].daily == [(D0, 500), (D0 + 1, 10), (D0 + 2, 20)]


async def test_a_baseline_that_moves_the_count_is_a_point(store: Store) -> None:
    """A retired network shows only what was imported: its history follows the floor."""
    await store.track(PAGE, T0 - 3 * DAY)
    await store.set_baselines([(PAGE, "googleplus", 12)], now=T0)
    # A re-import changes nothing, a lower floor neither; a higher one is the next point.
    await store.set_baselines([(PAGE, "googleplus", 12)], now=T0 + DAY)
    await store.set_baselines([(PAGE, "googleplus", 5)], now=T0 + DAY)
    await store.set_baselines([(PAGE, "googleplus", 30)], now=T0 + 2 * DAY)
    # Below a fetched count the floor moves but the count does not: a point for the clicks
    # alone, which the floor raised (what the network would show if counted by clicks).
    await store.merge_counts("hatena", {PAGE: 50}, T0)
    await store.set_baselines([(PAGE, "hatena", 40)], now=T0 + DAY)
    history = await store.history(PAGE)
    floor = [(D0, 12), (D0 + 2, 30)]
    assert history["googleplus"] == Series(daily=floor, clicks=Series(daily=floor))
    assert history["hatena"] == Series(daily=[(D0, 50)], clicks=Series(daily=[(D0 + 1, 40)]))


async def test_share_clicks_are_a_series_of_their_own(store: Store) -> None:
    tracked = T0 + 30 * 60
    await store.track(PAGE, tracked)
    await store.merge_counts("hatena", {PAGE: 40}, tracked)
    visits = [("a", tracked), ("b", tracked + 2 * HOUR), ("a", tracked + DAY), ("b", T0 + 3 * DAY)]
    for visitor, at in visits:
        for network in ("hatena", "linkedin"):
            day = int(at // DAY)
            assert await store.count_click(PAGE, network, visitor * 32, day, now=at)
    # A repeat the same day is not a click, so not a point either.
    assert not await store.count_click(PAGE, "linkedin", "a" * 32, D0 + 1, now=T0 + DAY + HOUR)
    hour = D0 * 24
    clicks = Series(
        daily=[(D0, 2), (D0 + 1, 3), (D0 + 3, 4)], hourly=[(hour, 1), (hour + 2, 2), (hour + 24, 3)]
    )
    history = await store.history(PAGE)
    assert history["linkedin"] == Series(daily=[], clicks=clicks)
    assert history["hatena"] == Series(daily=[(D0, 40)], hourly=[(hour, 40)], clicks=clicks)
    record = await store.get(PAGE)
    assert record is not None
    assert record.networks["linkedin"].clicks == record.networks["hatena"].clicks == 4


def model_put(points: dict[int, int], t: int, count: int, floor: int) -> None:
    """What the store's script does to a series, on whole points."""
    t = max(t, *points) if points else t
    points[t] = count
    old = [p for p in points if p <= floor]
    if old:
        kept = points[max(old)]
        for p in old:
            del points[p]
        points[floor] = kept


@pytest.mark.parametrize("seed", range(12))
async def test_random_merges_match_a_model(redis: Redis, seed: int) -> None:
    rng = random.Random(seed)
    days = rng.randrange(1, 8)
    store = Store(redis, history_days=days)
    url = f"{PAGE}/{seed}"
    tracked = T0 + rng.randrange(DAY)
    await store.track(url, tracked)
    now, served, floor = tracked, -1, 0
    # The count's series and the floor's (the clicks' series, without clicks), daily and hourly.
    model: tuple[dict[int, int], ...] = ({}, {}, {}, {})

    def model_add(count: int, daily: dict[int, int], hourly: dict[int, int]) -> None:
        today = int(now // DAY)
        model_put(daily, today, count, today - days + 1)
        if now < tracked + HOURLY_SECONDS:
            model_put(hourly, int(now // HOUR), count, 0)
        elif tracked < (today - days + 1) * DAY:
            # Each series drops its hours when it is next written.
            hourly.clear()

    for _ in range(60):
        now += rng.choice((60, 1_000, HOUR, 5 * HOUR, DAY, 3 * DAY))
        if served > 0 and rng.random() < 0.1:
            # An admin's reset: a point below the one before, as the count fell.
            served = rng.randrange(served)
            await store.set_baselines([(url, "hatena", served)], reset=True, now=now)
            model_add(served, *model[:2])
            if served != floor:
                floor = served
                model_add(floor, *model[2:])
            now += rng.choice((60, HOUR, DAY))
        count = max(0, served + rng.randrange(-5, 300))
        await store.merge_counts("hatena", {url: count}, now)
        if count <= served:
            continue
        served = count
        model_add(count, *model[:2])
        series = (await store.history(url))["hatena"]
        daily, hourly, floor_daily, floor_hourly = (sorted(points.items()) for points in model)
        floors = Series(floor_daily, floor_hourly) if floor_daily else None
        assert series == Series(daily, hourly, clicks=floors)


async def test_untracked_url_gets_no_history(store: Store, redis: Redis) -> None:
    await store.merge_counts("hatena", {PAGE: 9}, T0)
    assert await redis.exists(history_location(PAGE)[0]) == 0
    assert await store.history(PAGE) == {}


async def test_history_lives_beside_the_record(store: Store, redis: Redis) -> None:
    """Same bucket number and field as the record, under `h:`; the record is unchanged by it."""
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 9}, T0)
    key, ident = history_location(PAGE)
    assert key.startswith("flares:h:")
    assert await redis.hexists(key.replace(":h:", ":r:"), ident) == 1


def day_text(days_ago: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()


async def seed_history(store: Store) -> float:
    """Tracked early on the day ten days ago; hatena counted then, hacker news from a week ago."""
    now = time.time()
    tracked = (now // DAY - 10) * DAY + 60
    await store.track(PAGE, tracked)
    await store.merge_counts("hatena", {PAGE: 4}, tracked)
    await store.merge_counts("hatena", {PAGE: 5}, tracked + HOUR)
    await store.merge_counts("hackernews", {PAGE: 10}, now - 7 * DAY)
    await store.merge_counts("hatena", {PAGE: 8}, now - 5 * DAY)
    await store.merge_counts("hackernews", {PAGE: 12}, now - 2 * DAY)
    return tracked


async def test_history_of_one_network(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        tracked = await seed_history(runtime.store)
        response = await api.get("/api/v1/history", params={"url": PAGE, "network": "hatena"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["url"], body["network"]) == (PAGE, "hatena")
    # Every day from the first to today, each carrying the last count forward.
    assert body["daily"] == [
        {"date": day_text(ago), "count": 5 if ago > 5 else 8} for ago in range(10, -1, -1)
    ]
    # The hours of the first 48 tracked: from the one tracking began in to the one it ended in.
    start = datetime.fromtimestamp(tracked // HOUR * HOUR, UTC)
    hours = [datetime.fromisoformat(p["time"].replace("Z", "+00:00")) for p in body["hourly"]]
    assert hours == [start + timedelta(hours=h) for h in range(49)]
    assert [p["count"] for p in body["hourly"][:3]] == [4, 5, 5]


async def test_history_total_sums_networks_carrying_each_forward(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed_history(runtime.store)
        response = await api.get("/api/v1/history", params={"url": PAGE})
    body = response.json()
    assert body["network"] == "total"
    expected = {10: 5, 9: 5, 8: 5, 7: 15, 6: 15, 5: 18, 4: 18, 3: 18, 2: 20, 1: 20, 0: 20}
    assert body["daily"] == [{"date": day_text(a), "count": c} for a, c in expected.items()]
    # Hacker news had no count in the first 48 hours: the hours are hatena's alone.
    assert {p["count"] for p in body["hourly"]} == {4, 5}


async def test_history_follows_each_networks_source(make_api: ApiFactory) -> None:
    """LinkedIn shows its clicks over its imported floor, hatena its fetched count whatever the
    clicks on its button, and `max` networks the larger: the history follows each one."""
    async with make_api(providers={"reddit": {"source": "max"}}) as (api, runtime):
        store, now = runtime.store, time.time()
        await store.track(PAGE, now - 5 * DAY)
        await store.set_baselines([(PAGE, "linkedin", 2)], now=now - 4 * DAY)
        await store.merge_counts("hatena", {PAGE: 5}, now - 4 * DAY)
        await store.merge_counts("reddit", {PAGE: 2}, now - 4 * DAY)
        for ago, visitor in zip(range(3, -1, -1), "abcd", strict=True):
            at = now - ago * DAY
            for network in ("linkedin", "hatena", "reddit"):
                await store.count_click(PAGE, network, visitor * 32, int(at // DAY), now=at)
        bodies = {
            network: (await api.get("/api/v1/history", params={"url": PAGE, "network": network}))
            for network in ("linkedin", "hatena", "reddit", "total")
        }
        trend = await api.get("/badge/trend.svg", params={"url": PAGE, "network": "linkedin"})
        counts = (await api.get("/api/v1/counts", params={"url": PAGE})).json()
    series = {n: [p["count"] for p in r.json()["daily"]] for n, r in bodies.items()}
    assert series == {
        "linkedin": [2, 2, 2, 3, 4],
        "hatena": [5, 5, 5, 5, 5],
        "reddit": [2, 2, 2, 3, 4],
        "total": [9, 9, 9, 11, 13],
    }
    # The newest point is the number shown.
    assert {n: c["count"] for n, c in counts["networks"].items() if c["count"]} == {
        "linkedin": 4,
        "hatena": 5,
        "reddit": 4,
    }
    assert parse_badge(trend)[0] == "linkedin: 4, up 2 in 5 days"


async def test_history_of_a_page_without_counts_is_empty(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await runtime.store.track(PAGE, time.time())
        response = await api.get("/api/v1/history", params={"url": PAGE, "network": "hatena"})
    assert response.json() == {"url": PAGE, "network": "hatena", "daily": [], "hourly": []}


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"url": "https://nowhere.test/"}, 404, "not tracked"),
        ({"url": "not a url"}, 400, "invalid url"),
        ({}, 400, "invalid request"),
        ({"url": PAGE, "network": "myspace"}, 400, "unknown network"),
    ],
)
async def test_history_errors(
    make_api: ApiFactory, params: dict[str, str], status: int, error: str
) -> None:
    async with make_api() as (api, runtime):
        await runtime.store.track(PAGE, time.time())
        response = await api.get("/api/v1/history", params=params)
    assert_error(response, status, error)


async def seed_days(store: Store, days: int) -> None:
    """A hatena count that rose by 3 every day for `days` days, up to today."""
    now = time.time()
    await store.track(PAGE, now - days * DAY)
    for ago in range(days - 1, -1, -1):
        await store.merge_counts("hatena", {PAGE: 100 + 3 * (days - 1 - ago)}, now - ago * DAY)


def polyline_points(root: ET.Element) -> list[tuple[float, float]]:
    [line] = root.iter(f"{SVG}polyline")
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.attrib["points"].split())]


async def test_trend_badge_draws_the_last_30_days(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed_days(runtime.store, 40)
        response = await api.get("/badge/trend.svg", params={"url": PAGE})
        again = await api.get(
            "/badge/trend.svg",
            params={"url": PAGE},
            headers={"If-None-Match": response.headers["etag"]},
        )
    spoken, root = parse_badge(response)
    assert spoken == "flares: 217, up 87 in 30 days"
    assert root.findtext(f"{SVG}title") == spoken
    assert root.attrib["role"] == "img"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["flares 30d", "217"]
    points = polyline_points(root)
    assert len(points) == 30
    width = float(root.attrib["width"])
    assert all(0 < x < width and 0 < y < 20 for x, y in points)
    # Rising counts: each point higher (a smaller y) than the one before.
    assert all(b[1] < a[1] for a, b in pairwise(points))
    assert "max-age=300" in response.headers["cache-control"]
    assert again.status_code == 304


async def test_trend_of_one_network_and_a_short_history(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed_days(runtime.store, 3)
        await runtime.store.merge_counts("hackernews", {PAGE: 1200}, time.time())
        network = await api.get("/badge/trend.svg", params={"url": PAGE, "network": "hatena"})
        total = await api.get("/badge/trend.svg", params={"url": PAGE, "format": "full"})
    spoken, root = parse_badge(network)
    assert spoken == "hatena bookmark: 106, up 6 in 3 days"
    assert len(polyline_points(root)) == 3
    assert parse_badge(total)[0] == "flares: 1306, up 1206 in 3 days"


async def test_trend_of_a_single_day_is_a_level_line(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed_days(runtime.store, 1)
        response = await api.get("/badge/trend.svg", params={"url": PAGE})
    spoken, root = parse_badge(response)
    assert spoken == "flares: 100, no change in 1 day"
    [(_, y1), (_, y2)] = polyline_points(root)
    assert y1 == y2 == 10


async def test_trend_label_is_escaped(make_api: ApiFactory) -> None:
    label = "<b>&\"'\x01"
    async with make_api() as (api, runtime):
        await seed_days(runtime.store, 2)
        response = await api.get("/badge/trend.svg", params={"url": PAGE, "label": label})
    assert "<b>" not in response.text
    spoken, root = parse_badge(response)
    assert spoken == "<b>&\"': 103, up 3 in 2 days"
    assert next(t.text for t in root.iter(f"{SVG}text")) == "<b>&\"'"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"url": "https://nowhere.test/"}, "not tracked"),
        ({"url": "not a url"}, "invalid url"),
        ({}, "missing url"),
        ({"url": PAGE, "network": "myspace"}, "unknown network"),
        ({"url": PAGE}, "pending"),
        ({"url": PAGE, "min": "x"}, "invalid min"),
    ],
)
async def test_trend_error_badges(
    make_api: ApiFactory, params: dict[str, str], message: str
) -> None:
    async with make_api() as (api, runtime):
        await runtime.store.track(PAGE, time.time())
        response = await api.get("/badge/trend.svg", params=params)
    spoken, root = parse_badge(response)
    assert spoken.endswith(": " + message)
    assert not list(root.iter(f"{SVG}polyline"))


async def test_trend_hides_the_count_below_min(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed_days(runtime.store, 2)
        response = await api.get("/badge/trend.svg", params={"url": PAGE, "min": "500"})
    spoken, root = parse_badge(response)
    assert spoken == "flares 30d"
    assert not list(root.iter(f"{SVG}polyline"))


async def test_trend_is_not_a_network_named_trend(make_api: ApiFactory) -> None:
    """`/badge/{network}.svg` must not take the trend badge's path."""
    async with make_api() as (api, runtime):
        await seed_days(runtime.store, 2)
        trend = await api.get("/badge/trend.svg", params={"url": PAGE})
        network = await api.get("/badge/hatena.svg", params={"url": PAGE})
    assert "unknown network" not in parse_badge(trend)[0]
    assert parse_badge(network)[0] == "hatena bookmark: 103"
