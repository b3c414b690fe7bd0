"""A page's aliases in the store, on the single server and on the cluster: kept by every
script that rewrites a record, never tracked on their own, never held by two pages."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest

from aggregator.store import AliasTaken, Store
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)
from tests.test_api import ApiFactory, assert_error, make_api
from tests.test_badge_api import parse_badge
from tests.test_faults import RedisProcess
from tests.test_share import click, visitor

# Imported for pytest: the fixture is found by its name in this module.
__all__ = ["make_api"]

PAGE = "https://example.com/post"


async def test_aliases_survive_merge_refresh_and_retrack(store: Store) -> None:
    old = "https://old.example.net/p"
    now = time.time()
    await store.track(PAGE, now)
    await store.set_aliases(PAGE, [old, "https://example.com/p?id=1"])
    await store.merge_counts("hatena", {PAGE: 3}, now)
    await store.mark_failed("hackernews", [PAGE], now)
    await store.set_baselines([(PAGE, "hatena", 9)])
    assert await store.count_click(PAGE, "hatena", "a visitor's hash", int(now // 86_400))
    await store.refresh([PAGE], now)
    await store.refresh_domain("example.com", now)
    assert await store.untrack(PAGE) is True
    assert await store.track(PAGE, now) is True
    record = await store.get(PAGE)
    assert record is not None
    assert record.aliases == (old, "https://example.com/p?id=1")
    assert (record.networks["hatena"].count, record.networks["hatena"].clicks) == (9, 1)
    claims = await store.claim_due(now + 1, 10, now + 60, ["hatena"])
    assert claims[PAGE].aliases == record.aliases
    [site] = await store.site("example.com")
    assert site.aliases == record.aliases
    # Replacing the list frees what was dropped.
    assert await store.set_aliases(PAGE, [old]) == record.aliases
    await store.track("https://example.com/p?id=1", now)
    assert await store.get("https://example.com/p?id=1") is not None


async def test_an_alias_is_not_tracked_and_a_purge_frees_it(store: Store) -> None:
    old, other = "https://example.com/old", "https://example.com/other"
    now = time.time()
    await store.track_many([PAGE, other], now)
    await store.set_aliases(PAGE, [old])
    assert await store.track(old, now) is False
    assert await store.track_many([old], now) == 0
    assert await store.get(old) is None
    with pytest.raises(AliasTaken) as taken:
        await store.set_aliases(other, [old])
    assert taken.value.page == PAGE
    # Untracking keeps the aliases with the record; a purge frees them.
    await store.untrack(PAGE)
    with pytest.raises(AliasTaken):
        await store.set_aliases(other, [old])
    assert await store.untrack(PAGE, purge=True) is False
    assert await store.set_aliases(other, [old]) == ()


async def test_a_refused_alias_changes_nothing(store: Store) -> None:
    free, page_alias, other = (f"https://example.com/{n}" for n in ("free", "held", "other"))
    now = time.time()
    await store.track_many([PAGE, other], now)
    await store.set_aliases(other, [page_alias])
    with pytest.raises(AliasTaken) as taken:
        await store.set_aliases(PAGE, [free, page_alias])
    assert (taken.value.alias, taken.value.page) == (page_alias, other)
    with pytest.raises(AliasTaken) as is_page:
        await store.set_aliases(PAGE, [free, other])
    assert (is_page.value.alias, is_page.value.page) == (other, None)
    record = await store.get(PAGE)
    assert record is not None and record.aliases == ()
    # `free` was reserved and given back: another page may take it.
    assert await store.set_aliases(other, [page_alias, free]) == (page_alias,)
    assert await store.set_aliases("https://example.com/none", [free]) is None


async def test_find_answers_an_alias_with_its_page(store: Store) -> None:
    old, now = "https://old.example.net/p", time.time()
    await store.track(PAGE, now)
    await store.merge_counts("hatena", {PAGE: 3}, now)
    assert await store.find(old) is None
    await store.set_aliases(PAGE, [old])
    page = await store.find(PAGE)
    assert page is not None and page.url == PAGE
    assert await store.find(old) == page
    assert await store.find("https://old.example.net/other") is None
    # Freed again, the alias is nobody's.
    await store.set_aliases(PAGE, [])
    assert await store.find(old) is None


async def test_find_many_answers_aliases_with_their_pages(store: Store) -> None:
    old, other, now = "https://old.example.net/p", "https://example.com/other", time.time()
    await store.track_many([PAGE, other], now)
    await store.set_aliases(PAGE, [old])
    unknown = "https://old.example.net/q"
    found = await store.find_many([other, old, unknown, PAGE])
    assert list(found) == [other, old, unknown, PAGE]
    page, alias, elsewhere = found[PAGE], found[old], found[other]
    assert page is not None and page.url == PAGE
    assert alias == page
    assert elsewhere is not None and elsewhere.url == other
    assert found[unknown] is None


async def test_bulk_read_of_an_alias_answers_its_page(make_api: ApiFactory) -> None:
    old = "https://example.com/old-slug"
    async with make_api(allowed_domains=["example.com"]) as (api, runtime):
        await runtime.store.track(PAGE, time.time())
        await runtime.store.set_aliases(PAGE, [old])
        await runtime.store.merge_counts("hatena", {PAGE: 7}, time.time())
        answer = await api.post("/api/v1/counts", json={"urls": [old, PAGE]})
        tracked = await runtime.store.tracked_count()
    [alias, page] = answer.json()["results"]
    assert (alias["url"], alias["status"]) == (old, 200)
    assert alias["counts"]["url"] == PAGE
    assert alias["counts"] == page["counts"]
    assert tracked == 1


async def test_held_finds_pages_and_aliases(store: Store) -> None:
    """What a page's variants are checked against: a variant that is one counts there alone."""
    untracked, alias = "https://example.com/gone", "https://example.com/old"
    now = time.time()
    await store.track_many([PAGE, untracked], now)
    await store.untrack(untracked)
    await store.set_aliases(PAGE, [alias])
    asked = [PAGE, untracked, alias, "https://example.com/none"]
    assert await store.held(asked) == {PAGE, untracked, alias}
    assert await store.held([]) == set()


async def test_reads_of_an_alias_answer_the_pages_counts(make_api: ApiFactory) -> None:
    """On an allowed domain, where a read would track an unknown URL: the alias stays untracked,
    and every read answers with the page, saying which."""
    old = "https://example.com/old-slug"
    async with make_api(allowed_domains=["example.com"]) as (api, runtime):
        store, now = runtime.store, time.time()
        await store.track(PAGE, now)
        await store.set_aliases(PAGE, [old])
        await store.merge_counts("hatena", {PAGE: 7}, now)
        spelled = "HTTPS://Example.com/old-slug?utm_source=x"
        counts = await api.get("/api/v1/counts", params={"url": spelled})
        badge = await api.get("/badge.svg", params={"url": old, "network": "hatena"})
        history = await api.get("/api/v1/history", params={"url": old, "network": "hatena"})
        trend = await api.get("/badge/trend.svg", params={"url": old})
        widget = await api.get("/widget", params={"url": old})
        share = await click(api, "hackernews", visitor(), url=old)
        tracked = await store.tracked_count()
        page = await store.get(PAGE)
        # A URL that is no alias is still tracked on its first read.
        fresh = await api.get("/api/v1/counts", params={"url": "https://example.com/new"})
    assert counts.status_code == 200, counts.text
    assert (counts.json()["url"], counts.json()["total"]) == (PAGE, 7)
    assert counts.json()["aliases"] == [old]
    assert parse_badge(badge)[0] == "hatena bookmark: 7"
    assert history.json()["url"] == PAGE
    assert [p["count"] for p in history.json()["daily"]] == [7]
    assert parse_badge(trend)[0] == "flares: 7, no change in 1 day"
    assert widget.status_code == 200 and PAGE in widget.text
    # A share through the alias is the page's, and shares the page.
    assert quote(PAGE, safe="") in share.headers["location"]
    assert page is not None and page.networks["hackernews"].clicks == 1
    assert tracked == 1
    assert await store.get(old) is None
    assert fresh.status_code == 202


async def test_an_alias_elsewhere_is_still_an_alias(make_api: ApiFactory) -> None:
    """Off the allowed domains an alias is found all the same; an unknown URL there is not."""
    old = "https://old.example.net/p"
    async with make_api(allowed_domains=["example.com"]) as (api, runtime):
        await runtime.store.track(PAGE, time.time())
        await runtime.store.set_aliases(PAGE, [old])
        found = await api.get("/api/v1/counts", params={"url": old})
        unknown = await api.get("/api/v1/counts", params={"url": "https://old.example.net/q"})
    assert found.json()["url"] == PAGE
    assert_error(unknown, 404, "not tracked")


async def test_an_alias_read_before_redis_went_away_answers_stale(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    old = "https://old.example.net/p"
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    try:
        async with make_api(redis_at=redis.url) as (api, runtime):
            await runtime.store.track(PAGE, time.time())
            await runtime.store.set_aliases(PAGE, [old])
            await runtime.store.merge_counts("hatena", {PAGE: 7}, time.time())
            fresh = await api.get("/api/v1/counts", params={"url": old})
            bulk_old = "https://old.example.net/bulk"
            await runtime.store.set_aliases(PAGE, [old, bulk_old])
            await api.post("/api/v1/counts", json={"urls": [bulk_old]})
            redis.kill()
            stale = await api.get("/api/v1/counts", params={"url": old})
            from_bulk = await api.get("/api/v1/counts", params={"url": bulk_old})
    finally:
        redis.stop()
    assert stale.status_code == 200, stale.text
    assert stale.json() == {**fresh.json(), "stale": True}
    assert from_bulk.status_code == 200 and from_bulk.json()["url"] == PAGE
