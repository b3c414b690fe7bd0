"""A page's aliases in the store, on the single server and on the cluster: kept by every
script that rewrites a record, never tracked on their own, never held by two pages."""

from __future__ import annotations

import time

import pytest

from aggregator.store import AliasTaken, Store
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)

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
