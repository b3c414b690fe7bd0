"""Baselines, untracking and the audit log: the store and the admin API against a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from aggregator.store import AUDIT, AUDIT_LENGTH, Store, due_location, history_location
from tests.test_api import PAGE, ApiFactory, assert_error, make_api
from tests.test_store import packed_record

__all__ = ["make_api"]

T0 = 1_700_000_000.0
KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def counts_of(store: Store, network: str, url: str = PAGE) -> tuple[Any, ...]:
    record = await store.get(url)
    assert record is not None
    net = record.networks[network]
    return net.count, net.baseline, net.seen


async def test_baseline_raises_the_count_and_never_lowers_it(store: Store) -> None:
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 40}, T0 + 1)
    assert await store.set_baselines([(PAGE, "hatena", 100)]) == [True]
    # What the network said is kept apart from the raised count.
    assert await counts_of(store, "hatena") == (100, 100, 40)
    assert await store.set_baselines([(PAGE, "hatena", 60)]) == [False]
    assert await counts_of(store, "hatena") == (100, 100, 40)


async def test_baseline_below_the_count_keeps_the_count(store: Store) -> None:
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 500}, T0 + 1)
    assert await store.set_baselines([(PAGE, "hatena", 100)]) == [True]
    assert await counts_of(store, "hatena") == (500, 100, 500)


async def test_the_same_baseline_again_changes_nothing(store: Store, redis: Redis) -> None:
    await store.track(PAGE, T0)
    rows = [(PAGE, "googleplus", 7), (PAGE, "linkedin", 83)]
    assert await store.set_baselines(rows) == [True, True]
    before = await packed_record(redis, PAGE)
    assert await store.set_baselines(rows) == [False, False]
    assert await packed_record(redis, PAGE) == before


async def test_a_zero_baseline_says_nothing(store: Store) -> None:
    await store.track(PAGE, T0)
    assert await store.set_baselines([(PAGE, "googleplus", 0)]) == [False]
    record = await store.get(PAGE)
    assert record is not None
    assert record.networks == {}


async def test_retired_network_serves_its_baseline(store: Store) -> None:
    await store.track(PAGE, T0)
    await store.set_baselines([(PAGE, "googleplus", 12)])
    record = await store.get(PAGE)
    assert record is not None
    net = record.networks["googleplus"]
    # Never fetched: a count all the same, and nothing the network said.
    assert (net.count, net.baseline, net.seen, net.fetched_at) == (12, 12, None, None)
    assert record.total == 12


async def test_fetch_above_the_baseline_raises_and_below_keeps(store: Store) -> None:
    await store.track(PAGE, T0)
    await store.set_baselines([(PAGE, "hatena", 100)])
    await store.merge_counts("hatena", {PAGE: 30}, T0 + 1)
    assert await counts_of(store, "hatena") == (100, 100, 30)
    await store.merge_counts("hatena", {PAGE: 130}, T0 + 2)
    assert await counts_of(store, "hatena") == (130, 100, 130)


async def test_reset_lowers_count_and_baseline_and_a_fetch_raises_again(store: Store) -> None:
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 900}, T0 + 1)
    await store.set_baselines([(PAGE, "hatena", 1000)])
    assert await store.set_baselines([(PAGE, "hatena", 50)], reset=True) == [True]
    # Until the next fetch, the count is below what the network said.
    assert await counts_of(store, "hatena") == (50, 50, 900)
    assert await store.set_baselines([(PAGE, "hatena", 50)], reset=True) == [False]
    await store.merge_counts("hatena", {PAGE: 70}, T0 + 2)
    assert await counts_of(store, "hatena") == (70, 50, 70)
    # A reset to 0 removes the floor.
    assert await store.set_baselines([(PAGE, "hatena", 0)], reset=True) == [True]
    assert await counts_of(store, "hatena") == (0, None, 70)


async def test_baseline_of_an_untracked_url_is_refused(store: Store) -> None:
    assert await store.set_baselines([(PAGE, "hatena", 5)]) == [None]
    assert await store.get(PAGE) is None


async def test_untrack_keeps_the_counts_and_tracking_again_resumes(store: Store) -> None:
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 9}, T0 + 1)
    assert await store.untrack(PAGE) is True
    assert await store.due_at(PAGE) is None
    assert await store.tracked_count() == 0
    assert await counts_of(store, "hatena") == (9, None, 9)
    assert await store.untrack(PAGE) is False
    # Nothing fetches it, not even a refresh.
    assert await store.refresh([PAGE], T0 + 2) == 0
    assert await store.refresh_all(T0 + 2) == 0
    assert await store.due_at(PAGE) is None
    # A fetch that was under way when the page was untracked does not bring it back.
    await store.reschedule({PAGE: T0 + 100})
    assert await store.due_at(PAGE) is None
    assert await store.track(PAGE, T0 + 5) is True
    assert await store.due_at(PAGE) == T0 + 5
    assert await counts_of(store, "hatena") == (9, None, 9)


async def test_purge_deletes_the_record_and_its_history(store: Store, redis: Redis) -> None:
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 9}, T0 + 1)
    assert await redis.hexists(*history_location(PAGE))
    assert await store.untrack(PAGE, purge=True) is True
    assert await store.get(PAGE) is None
    assert not await redis.hexists(*history_location(PAGE))
    assert await store.untrack(PAGE, purge=True) is None
    assert await store.track(PAGE, T0 + 5) is True
    record = await store.get(PAGE)
    assert record is not None
    assert record.networks == {}


async def test_audit_log_is_newest_first_and_capped(store: Store, redis: Redis) -> None:
    for n in range(3):
        await store.audit(T0 + n, "track", f"https://example.com/{n}", "created", "abc")
    entries = await store.audit_log(2)
    assert [(e.time, e.target) for e in entries] == [
        (T0 + 2, "https://example.com/2"),
        (T0 + 1, "https://example.com/1"),
    ]
    assert (entries[0].action, entries[0].detail, entries[0].who) == ("track", "created", "abc")
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(AUDIT_LENGTH + 500):
            pipe.xadd(AUDIT, {"time": T0, "action": "a", "target": str(n)}, maxlen=AUDIT_LENGTH)
        await pipe.execute()
    await store.audit(T0, "track", "x", "", "abc")
    # Approximate trimming: whole nodes go, so the log stays near its cap, never far above.
    assert AUDIT_LENGTH <= await redis.xlen(AUDIT) < AUDIT_LENGTH + 200


# The API


async def audit_entries(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/audit", headers=AUTH)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/urls", {"json": {"url": PAGE}}),
    ("POST", "/api/v1/urls/bulk", {"json": {"urls": [PAGE]}}),
    ("DELETE", "/api/v1/urls", {"params": {"url": PAGE}}),
    ("PUT", "/api/v1/counts", {"json": {"url": PAGE, "network": "hatena", "count": 3}}),
    ("POST", "/api/v1/baselines", {"json": {"rows": [{"url": PAGE, "network": "x", "count": 1}]}}),
    ("POST", "/api/v1/refresh", {"json": {"all": True}}),
    ("GET", "/api/v1/audit", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES)
async def test_every_admin_call_needs_the_key(
    make_api: ApiFactory, store: Store, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    await store.track(PAGE, T0)
    async with make_api(admin_key=KEY) as (api, _):
        anonymous = await api.request(method, path, **kwargs)
        wrong = await api.request(method, path, headers={"Authorization": "Bearer no"}, **kwargs)
    assert_error(anonymous, 401, "admin key required")
    assert_error(wrong, 401, "admin key required")
    assert await store.audit_log(10) == []


async def test_put_sets_then_resets_and_audits(make_api: ApiFactory, store: Store) -> None:
    async with make_api(admin_key=KEY) as (api, _):
        body = {"url": "HTTPS://Blog.Example.com/post", "network": "linkedin", "count": 83}
        first = await api.put("/api/v1/counts", json=body, headers=AUTH)
        lower = await api.put("/api/v1/counts", json={**body, "count": 10}, headers=AUTH)
        reset = await api.put(
            "/api/v1/counts", json={**body, "count": 10, "reset": True}, headers=AUTH
        )
        entries = await audit_entries(api)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "url": PAGE,
        "network": "linkedin",
        "count": 83,
        "baseline": 83,
        "changed": True,
    }
    assert lower.json() | {"changed": None} == first.json() | {"changed": None}
    assert lower.json()["changed"] is False
    assert reset.json() == {**first.json(), "count": 10, "baseline": 10}
    # The page is tracked from the first baseline on.
    assert await store.due_at(PAGE) is not None
    assert [(e["action"], e["target"], e["detail"]) for e in entries] == [
        ("baseline.reset", PAGE, "linkedin 10"),
        ("baseline.set", PAGE, "linkedin 10, unchanged"),
        ("baseline.set", PAGE, "linkedin 83"),
    ]
    fingerprints = {e["who"] for e in entries}
    assert len(fingerprints) == 1
    assert KEY not in fingerprints.pop()


async def test_put_refuses_an_unknown_network_and_a_negative_count(make_api: ApiFactory) -> None:
    async with make_api(admin_key=KEY) as (api, _):
        unknown = await api.put(
            "/api/v1/counts", json={"url": PAGE, "network": "myspace", "count": 1}, headers=AUTH
        )
        negative = await api.put(
            "/api/v1/counts", json={"url": PAGE, "network": "hatena", "count": -1}, headers=AUTH
        )
    body = assert_error(unknown, 400, "unknown network")
    assert "googleplus" in body["detail"]
    assert_error(negative, 400, "invalid request")


async def test_bulk_baselines_answer_each_row_and_reimport_is_unchanged(
    make_api: ApiFactory, store: Store
) -> None:
    rows = [
        {"url": PAGE, "network": "googleplus", "count": 12},
        {"url": PAGE, "network": "email", "count": 4},
        {"url": "not a url", "network": "hatena", "count": 1},
        {"url": PAGE, "network": "myspace", "count": 1},
        {"url": "https://other.example.org/", "network": "hatena", "count": 0},
    ]
    async with make_api(admin_key=KEY) as (api, _):
        first = await api.post("/api/v1/baselines", json={"rows": rows}, headers=AUTH)
        again = await api.post("/api/v1/baselines", json={"rows": rows}, headers=AUTH)
        counts = await api.get("/api/v1/counts", params={"url": PAGE})
        entries = await audit_entries(api)
        # The imported numbers are the history's points: the trend starts from them.
        history = {
            network: (await api.get("/api/v1/history", params={"url": PAGE, "network": network}))
            for network in ("googleplus", "email", "total")
        }
    today = datetime.now(UTC).date().isoformat()
    assert {n: r.json()["daily"] for n, r in history.items()} == {
        "googleplus": [{"date": today, "count": 12}],
        "email": [{"date": today, "count": 4}],
        "total": [{"date": today, "count": 16}],
    }
    assert first.status_code == 200, first.text
    body = first.json()
    assert [r["status"] for r in body["results"]] == ["ok", "ok", "error", "error", "unchanged"]
    assert body["results"][2]["error"]["error"] == "invalid url"
    assert body["results"][3]["error"]["error"] == "unknown network"
    assert (body["imported"], body["unchanged"], body["errors"]) == (2, 1, 2)
    assert again.json()["imported"] == 0
    assert again.json()["unchanged"] == 3
    assert counts.json()["networks"]["googleplus"]["count"] == 12
    assert await counts_of(store, "email") == (4, 4, None)
    assert await store.get("https://other.example.org/") is not None
    assert [(e["action"], e["target"], e["detail"]) for e in entries] == [
        ("baseline.import", "5 rows", "imported 0, unchanged 3, errors 2"),
        ("baseline.import", "5 rows", "imported 2, unchanged 1, errors 2"),
    ]


async def test_bulk_baselines_refuse_more_than_1000_rows(make_api: ApiFactory) -> None:
    rows = [{"url": f"{PAGE}/{n}", "network": "hatena", "count": n} for n in range(1001)]
    async with make_api(admin_key=KEY) as (api, _):
        response = await api.post("/api/v1/baselines", json={"rows": rows}, headers=AUTH)
    assert_error(response, 400, "invalid request")


async def test_without_the_key_the_allowed_domains_bound_writes(make_api: ApiFactory) -> None:
    foreign = {"url": "https://evil.test/", "network": "hatena", "count": 5}
    async with make_api(allowed_domains="example.com") as (api, _):
        put = await api.put("/api/v1/counts", json=foreign)
        bulk = await api.post("/api/v1/urls/bulk", json={"urls": [PAGE, foreign["url"]]})
        entries = (await api.get("/api/v1/audit")).json()["entries"]
    assert_error(put, 403, "domain not allowed")
    assert bulk.json()["created"] == 1
    assert [r["error"]["error"] for r in bulk.json()["refused"]] == ["domain not allowed"]
    assert entries[0]["who"] == "no-key"


async def test_bulk_track_counts_new_and_known_pages(make_api: ApiFactory, store: Store) -> None:
    await store.track(PAGE, T0)
    urls = [PAGE, f"{PAGE}/2", f"{PAGE}/2#again", "ftp://x/"]
    async with make_api(admin_key=KEY) as (api, _):
        response = await api.post("/api/v1/urls/bulk", json={"urls": urls}, headers=AUTH)
        entries = await audit_entries(api)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["tracked"]) == (1, 1)
    assert [r["url"] for r in body["refused"]] == ["ftp://x/"]
    assert await store.tracked_count() == 2
    assert (entries[0]["action"], entries[0]["target"]) == ("track.bulk", "4 urls")


async def test_delete_untracks_or_purges_and_audits(
    make_api: ApiFactory, store: Store, redis: Redis
) -> None:
    await store.track(PAGE, T0)
    await store.merge_counts("hatena", {PAGE: 9}, T0 + 1)
    async with make_api(admin_key=KEY) as (api, _):
        untrack = await api.delete("/api/v1/urls", params={"url": PAGE}, headers=AUTH)
        counts = await api.get("/api/v1/counts", params={"url": PAGE})
        refresh = await api.post("/api/v1/refresh", json={"url": PAGE}, headers=AUTH)
        purge = await api.delete(
            "/api/v1/urls", params={"url": PAGE, "purge": "true"}, headers=AUTH
        )
        gone = await api.delete("/api/v1/urls", params={"url": PAGE}, headers=AUTH)
        entries = await audit_entries(api)
    assert untrack.json() == {"url": PAGE, "was_tracked": True, "purged": False}
    assert await redis.zscore(*due_location(PAGE)) is None
    # Untracked, its counts are still served.
    assert counts.status_code == 200
    assert counts.json()["networks"]["hatena"]["count"] == 9
    assert_error(refresh, 404, "not tracked")
    assert purge.json() == {"url": PAGE, "was_tracked": False, "purged": True}
    assert_error(gone, 404, "not tracked")
    assert await store.get(PAGE) is None
    assert [(e["action"], e["detail"]) for e in entries] == [
        ("purge", "was untracked already"),
        ("untrack", "was tracked"),
    ]


async def test_track_and_refresh_are_audited(make_api: ApiFactory) -> None:
    async with make_api(admin_key=KEY) as (api, _):
        await api.post("/api/v1/urls", json={"url": PAGE}, headers=AUTH)
        await api.post("/api/v1/urls", json={"url": PAGE}, headers=AUTH)
        await api.post("/api/v1/refresh", json={"domain": "Example.com"}, headers=AUTH)
        limited = (await api.get("/api/v1/audit", params={"limit": 2}, headers=AUTH)).json()
    assert [(e["action"], e["target"], e["detail"]) for e in limited["entries"]] == [
        ("refresh", "example.com", "refreshed 1"),
        ("track", PAGE, "already tracked"),
    ]
    assert all(KEY not in str(e) for e in limited["entries"])


async def test_a_network_known_only_by_its_baseline_says_so(
    make_api: ApiFactory, store: Store
) -> None:
    await store.track(PAGE, T0)
    await store.set_baselines([(PAGE, "googleplus", 7)])
    async with make_api(providers={"googleplus": {"enabled": True}}) as (api, _):
        body = (await api.get("/api/v1/counts", params={"url": PAGE})).json()
    assert body["state"] == "ok"
    assert body["networks"]["googleplus"]["count"] == 7
    assert body["networks"]["googleplus"]["state"] == "baseline"
    # A network polled but not answered yet stays pending.
    assert body["networks"]["hatena"]["state"] == "pending"


async def test_a_network_counted_by_clicks_alone_is_shown_but_never_called(
    make_api: ApiFactory,
) -> None:
    async with make_api(providers={"buffer": {"enabled": True}}) as (api, runtime):
        assert "buffer" in runtime.active
        assert "buffer" not in runtime.poller.provider_names
        await runtime.store.track(PAGE, T0)
        counts = (await api.get("/api/v1/counts", params={"url": PAGE})).json()
        providers = (await api.get("/api/v1/providers")).json()["providers"]
    assert counts["networks"]["buffer"]["source"] == "clicks"
    buffer = next(p for p in providers if p["name"] == "buffer")
    assert buffer["state"] == "clicks"
    assert buffer["urls_tracked"] == 0
