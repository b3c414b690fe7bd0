"""A site's totals and top pages, walked from the records in Redis."""

from __future__ import annotations

import time

import pytest

from aggregator.api import sites
from aggregator.store import Store
from providers.base import Observation
from tests.test_api import ApiFactory, assert_error, make_api

__all__ = ["make_api"]

PAGES = {
    "https://example.com/a": {"hackernews": 5, "hatena": 1},
    "https://blog.example.com/b": {"hackernews": 2, "hatena": 9},
    "https://example.com/c": {"hackernews": 5},
    "https://example.com/pending": {},
    "https://notexample.com/x": {"hackernews": 100},
    "https://example.com.evil.test/y": {"hatena": 100},
}


async def seed(store: Store) -> None:
    now = time.time()
    await store.track_many(PAGES, now)
    for network in ("hackernews", "hatena"):
        counts = {u: Observation(c[network]) for u, c in PAGES.items() if network in c}
        await store.merge_counts(network, counts, now)


async def test_totals_take_the_domain_and_its_subdomains(
    make_api: ApiFactory, store: Store
) -> None:
    await seed(store)
    async with make_api() as (api, _):
        response = await api.get("/api/v1/sites/Example.COM.")
    assert response.status_code == 200
    assert response.json() == {
        "domain": "example.com",
        "pages": 4,
        "total": 22,
        "networks": {"hackernews": 12, "hatena": 10},
    }


async def test_top_by_total_or_network_ties_by_url(make_api: ApiFactory, store: Store) -> None:
    await seed(store)
    async with make_api() as (api, _):
        total = await api.get("/api/v1/sites/example.com/top")
        hn = await api.get("/api/v1/sites/example.com/top", params={"network": "hackernews"})
        one = await api.get("/api/v1/sites/example.com/top", params={"limit": 1})
    assert [(p["url"], p["count"]) for p in total.json()["pages"]] == [
        ("https://blog.example.com/b", 11),
        ("https://example.com/a", 6),
        ("https://example.com/c", 5),
        ("https://example.com/pending", 0),
    ]
    assert [(p["url"], p["count"]) for p in hn.json()["pages"]][:3] == [
        ("https://example.com/a", 5),
        ("https://example.com/c", 5),
        ("https://blog.example.com/b", 2),
    ]
    assert len(one.json()["pages"]) == 1


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        ("/api/v1/sites/exa mple.com", {}, 400, "invalid domain"),
        ("/api/v1/sites/under_score.example", {}, 400, "invalid domain"),
        ("/api/v1/sites/example.com/top", {"network": "myspace"}, 404, "unknown network"),
        ("/api/v1/sites/example.com/top", {"limit": "0"}, 400, "invalid request"),
        ("/api/v1/sites/example.com/top", {"limit": "101"}, 400, "invalid request"),
    ],
)
async def test_bad_input_says_what(
    make_api: ApiFactory, path: str, params: dict[str, str], status: int, error: str
) -> None:
    async with make_api() as (api, _):
        assert_error(await api.get(path, params=params), status, error)


async def test_a_walk_is_shared_for_a_while(
    make_api: ApiFactory, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(store)
    async with make_api() as (api, runtime):
        walks = 0
        walk = runtime.store.site

        async def counted(domain: str) -> list[object]:
            nonlocal walks
            walks += 1
            return list(await walk(domain))

        monkeypatch.setattr(runtime.store, "site", counted)
        for _ in range(3):
            await api.get("/api/v1/sites/example.com")
        await api.get("/api/v1/sites/example.com/top")
        assert walks == 1
        monkeypatch.setattr(sites, "CACHE_SECONDS", 0.0)
        await api.get("/api/v1/sites/example.com")
        assert walks == 2
