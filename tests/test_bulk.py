"""POST /api/v1/counts: many pages in one request, each answered as a single read would be."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from aggregator.api.models import BulkCountsResponse, CountsResponse
from aggregator.store import Store
from tests.fakeupstream import FakeUpstream
from tests.test_api import PAGE, ApiFactory, assert_error, make_api

__all__ = ["make_api"]

OTHER = "https://blog.example.com/other"


async def test_each_url_gets_what_a_single_read_would(
    make_api: ApiFactory, fake_upstream: FakeUpstream, store: Store
) -> None:
    fake_upstream.set_count("hatena", PAGE, 7)
    async with make_api(allowed_domains="example.com") as (api, runtime):
        await store.track(PAGE, time.time())
        await runtime.poller.tick()
        urls = [
            "HTTPS://Blog.Example.com/post?utm_source=feed#top",
            "not a url",
            OTHER,
            "https://elsewhere.test/page",
            PAGE,
        ]
        response = await api.post("/api/v1/counts", json={"urls": urls})
        singles = [await api.get("/api/v1/counts", params={"url": u}) for u in urls]
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["url"] for r in results] == urls
    assert [r["status"] for r in results] == [s.status_code for s in singles]
    assert [r["status"] for r in results] == [200, 400, 202, 404, 200]
    assert results[0]["counts"]["total"] == 7
    # Built as plain data for speed: the answers must still be what the models declare.
    BulkCountsResponse.model_validate(response.json())
    for single in singles:
        if single.status_code in (200, 202):
            assert CountsResponse.model_validate(single.json()).url == single.json()["url"]
    assert results[0]["counts"] == results[4]["counts"] == singles[0].json()
    assert results[1]["error"]["error"] == "invalid url"
    assert results[2]["counts"]["state"] == "pending", "tracked on this first read"
    assert results[3]["error"]["error"] == "not tracked"
    assert await store.get(OTHER) is not None
    assert await store.get("https://elsewhere.test/page") is None


async def test_at_most_a_thousand_urls(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        too_many = await api.post("/api/v1/counts", json={"urls": [PAGE] * 1001})
        none = await api.post("/api/v1/counts", json={"urls": []})
        thousand = await api.post("/api/v1/counts", json={"urls": [PAGE] * 1000})
    assert "at most 1000" in str(assert_error(too_many, 400, "invalid request")["detail"])
    assert_error(none, 400, "invalid request")
    assert thousand.status_code == 200
    assert {r["status"] for r in thousand.json()["results"]} == {404}


async def test_many_records_are_read_in_one_round_trip(
    make_api: ApiFactory, store: Store, redis: Redis
) -> None:
    urls = [f"https://example.com/p/{i}" for i in range(300)]
    await store.track_many(urls, time.time())
    async with make_api() as (api, _):
        await api.post("/api/v1/counts", json={"urls": urls[:1]})  # names and scripts known
        before = await commands(redis)
        response = await api.post("/api/v1/counts", json={"urls": urls})
        after = await commands(redis)
    assert {r["status"] for r in response.json()["results"]} == {202}
    # One read script on a single server (each HGET inside it counts as a command), plus the
    # INFO that measures it: nothing per URL beyond the read.
    assert after["hget"] - before["hget"] == len(urls)
    assert after["evalsha"] - before["evalsha"] == 1
    assert sum(after.values()) - sum(before.values()) == len(urls) + 2


async def commands(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
