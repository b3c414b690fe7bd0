"""The Redis data model against a real server: tracking, merging, claiming, bookkeeping."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from aggregator.store import (
    HEARTBEAT,
    MAX_COUNT,
    SHARDS,
    Claim,
    Store,
    UrlIdCollision,
    due_location,
    record_location,
    shard_of,
)
from providers.base import Observation
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)

A = "https://example.com/a"
B = "https://example.com/b"
T0 = 1_700_000_000.0


async def test_track_then_again_and_due(store: Store, redis: Redis) -> None:
    assert await store.track(A, T0) is True
    assert await store.track(A, T0 + 50) is False
    assert await store.due_at(A) == T0
    record = await store.get(A)
    assert record is not None
    assert record.url == A
    assert record.tracked_at == T0
    assert record.updated_at is None
    assert record.total == 0
    assert record.networks == {}
    assert await store.tracked_count() == 1


async def test_get_untracked_is_none(store: Store) -> None:
    assert await store.get(A) is None


async def test_merge_sets_count_seen_fetched_total(store: Store) -> None:
    await store.track(A, T0)
    await store.merge_counts("hatena", {A: 7}, T0 + 10)
    record = await store.get(A)
    assert record is not None
    net = record.networks["hatena"]
    assert net.count == 7
    assert net.seen == 7
    assert net.fetched_at == T0 + 10
    assert net.failed_at is None
    assert record.updated_at == T0 + 10
    assert record.total == 7


async def test_lower_count_keeps_served_but_records_seen(store: Store) -> None:
    await store.track(A, T0)
    await store.merge_counts("hatena", {A: 40}, T0 + 1)
    await store.merge_counts("hatena", {A: 12}, T0 + 2)
    record = await store.get(A)
    assert record is not None
    assert record.networks["hatena"].count == 40
    assert record.networks["hatena"].seen == 12
    assert record.networks["hatena"].fetched_at == T0 + 2
    assert record.total == 40
    await store.merge_counts("hatena", {A: 41}, T0 + 3)
    record = await store.get(A)
    assert record is not None
    assert record.networks["hatena"].count == 41
    assert record.total == 41


async def test_negative_count_is_zero(store: Store) -> None:
    await store.track(A, T0)
    await store.merge_counts("hatena", {A: -5}, T0 + 1)
    record = await store.get(A)
    assert record is not None
    assert record.networks["hatena"].count == 0
    assert record.total == 0


async def test_networks_sum_into_total(store: Store) -> None:
    await store.track(A, T0)
    await store.track(B, T0)
    await store.merge_counts("hatena", {A: 3, B: 100}, T0 + 1)
    await store.merge_counts("hackernews", {A: 25}, T0 + 1)
    a = await store.get(A)
    b = await store.get(B)
    assert a is not None and b is not None
    assert a.total == 28
    assert {n: r.count for n, r in a.networks.items()} == {"hackernews": 25, "hatena": 3}
    assert b.total == 100


async def test_large_counts_stay_exact_and_huge_ones_are_capped(store: Store) -> None:
    big = 4_503_599_627_370_497  # 2**52 + 1: exact in a Lua double
    await store.track(A, T0)
    await store.track(B, T0)
    await store.merge_counts("hatena", {A: big}, T0 + 1)
    await store.merge_counts("hackernews", {A: 3}, T0 + 1)
    record = await store.get(A)
    assert record is not None
    assert record.networks["hatena"].count == big
    assert record.networks["hatena"].seen == big
    assert record.total == big + 3
    # A garbage answer with an absurd number must not leave an unreadable record behind.
    await store.merge_counts("hatena", {B: 10**20}, T0 + 1)
    await store.merge_counts("hackernews", {B: 2}, T0 + 1)
    record = await store.get(B)
    assert record is not None
    assert record.networks["hatena"].count == MAX_COUNT
    assert record.total == MAX_COUNT + 2


async def test_concurrent_merges_total_is_sum_of_maxima(store: Store) -> None:
    await store.track(A, T0)
    networks = ["hatena", "hackernews", "reddit", "facebook"]
    # 80 merges at once: below the client's pool of 100 connections, which raises when exhausted.
    values = {net: [(i * 37 + k * 11) % 500 for i in range(20)] for k, net in enumerate(networks)}
    await asyncio.gather(
        *(
            store.merge_counts(net, {A: value}, T0 + i)
            for net in networks
            for i, value in enumerate(values[net])
        )
    )
    record = await store.get(A)
    assert record is not None
    maxima = {net: max(vs) for net, vs in values.items()}
    assert {n: r.count for n, r in record.networks.items()} == maxima
    assert record.total == sum(maxima.values())


async def test_merge_untracked_creates_nothing(store: Store, redis: Redis) -> None:
    await store.merge_counts("hatena", {A: 9}, T0)
    assert await redis.hexists(*record_location(A)) == 0
    assert await store.due_at(A) is None
    assert await store.get(A) is None


async def test_mark_failed_changes_no_count(store: Store) -> None:
    await store.track(A, T0)
    await store.merge_counts("hatena", {A: 5}, T0 + 1)
    await store.mark_failed("hatena", [A], T0 + 2)
    record = await store.get(A)
    assert record is not None
    net = record.networks["hatena"]
    assert (net.count, net.seen, net.fetched_at, net.failed_at) == (5, 5, T0 + 1, T0 + 2)
    assert record.total == 5


async def test_mark_failed_untracked_creates_nothing(store: Store, redis: Redis) -> None:
    await store.mark_failed("hatena", [A], T0)
    assert await redis.hexists(*record_location(A)) == 0
    # A later merge still finds nothing to merge into.
    await store.merge_counts("hatena", {A: 9}, T0 + 1)
    assert await redis.hexists(*record_location(A)) == 0


def tracked_at(claims: dict[str, Claim]) -> dict[str, float]:
    return {url: claim.tracked_at for url, claim in claims.items()}


async def test_claim_due_only_due_with_limit_and_tracked_at(store: Store) -> None:
    urls = {f"{A}/{i}": T0 + i for i in range(5)}
    for url, at in urls.items():
        await store.track(url, at)
    await store.track(B, T0 + 1000)  # not yet due at T0 + 10
    claimed = tracked_at(await store.claim_due(T0 + 10, limit=3, lease_until=T0 + 100))
    assert len(claimed) == 3
    rest = tracked_at(await store.claim_due(T0 + 10, limit=10, lease_until=T0 + 100))
    assert len(rest) == 2
    assert claimed | rest == urls


def urls_by_shard(per_shard: int) -> dict[int, list[str]]:
    """`per_shard` URLs in each shard."""
    found: dict[int, list[str]] = {shard: [] for shard in range(SHARDS)}
    i = 0
    while any(len(urls) < per_shard for urls in found.values()):
        url = f"https://example.com/s/{i}"
        if len(found[shard_of(url)]) < per_shard:
            found[shard_of(url)].append(url)
        i += 1
    return found


async def test_claims_take_one_shard_at_a_time_longest_due_first_every_shard_in_turn(
    store: Store,
) -> None:
    shards = urls_by_shard(4)
    for urls in shards.values():
        for k, url in enumerate(urls):
            await store.track(url, T0 + k)
    turns = []
    for _ in range(2 * SHARDS):
        claimed = await store.claim_due(T0 + 10, limit=2, lease_until=T0 + 100)
        [shard] = {shard_of(url) for url in claimed}
        turns.append(shard)
        # A backlog's batch is the shard's longest due, and touches that shard alone.
        done = sum(t == shard for t in turns)
        assert set(claimed) == set(shards[shard][2 * done - 2 : 2 * done])
    assert sorted(turns[:SHARDS]) == list(range(SHARDS)), "every shard has its turn"
    assert await store.claim_due(T0 + 10, limit=2, lease_until=T0 + 100) == {}


async def test_lease_hides_claimed_until_it_ends(store: Store, redis: Redis) -> None:
    await store.track(A, T0)
    await store.track(B, T0)
    first = tracked_at(await store.claim_due(T0, limit=10, lease_until=T0 + 300))
    assert set(first) == {A, B}
    assert await store.due_at(A) == T0 + 300
    assert tracked_at(await store.claim_due(T0 + 299, limit=10, lease_until=T0 + 600)) == {}
    # The worker died without rescheduling: after the lease the URLs come back.
    again = tracked_at(await store.claim_due(T0 + 300, limit=10, lease_until=T0 + 600))
    assert again == {A: T0, B: T0}


async def test_concurrent_claimers_get_disjoint_complete_sets(store: Store, redis: Redis) -> None:
    urls = [f"https://example.com/p/{i}" for i in range(500)]
    await store.track_many(urls, T0)
    parts = await asyncio.gather(
        *(store.claim_due(T0, limit=37, lease_until=T0 + 60) for _ in range(20))
    )
    seen: list[str] = [u for part in parts for u in part]
    assert len(seen) == len(set(seen)) == 500
    assert set(seen) == set(urls)
    assert all(len(part) <= 37 for part in parts)
    assert tracked_at(await store.claim_due(T0, limit=1000, lease_until=T0 + 60)) == {}


async def test_reschedule_sets_due_but_never_readds(store: Store, redis: Redis) -> None:
    await store.track(A, T0)
    await store.track(B, T0)
    await redis.zrem(*due_location(B))
    await store.reschedule({A: T0 + 1800, B: T0 + 1800})
    assert await store.due_at(A) == T0 + 1800
    assert await store.due_at(B) is None
    assert await store.tracked_count() == 1


async def test_beat_and_scheduler_alive(store: Store, redis: Redis) -> None:
    assert await store.scheduler_alive() is False
    await store.beat(ttl=0.2)
    assert await store.scheduler_alive() is True
    await asyncio.sleep(0.35)
    assert await store.scheduler_alive() is False
    await store.beat(ttl=30)
    assert await store.scheduler_alive() is True
    assert 25_000 < await redis.pttl(HEARTBEAT) <= 30_000


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_claim_drops_queue_entries_whose_record_is_gone(store: Store, redis: Redis) -> None:
    await store.track(A, T0)
    await store.track(B, T0)
    await redis.hdel(*record_location(B))
    assert tracked_at(await store.claim_due(T0 + 1, 10, lease_until=T0 + 100)) == {A: T0}
    assert await store.due_at(B) is None


async def test_success_clears_the_failure_and_a_failure_keeps_the_count(store: Store) -> None:
    await store.track(A, T0)
    await store.mark_failed("hatena", [A], T0 + 1)
    record = await store.get(A)
    assert record is not None
    net = record.networks["hatena"]
    assert (net.count, net.seen, net.fetched_at, net.failed_at) == (None, None, None, T0 + 1)
    assert record.total == 0
    # In the same second: flags, not time comparisons, say which came last.
    await store.merge_counts("hatena", {A: 4}, T0 + 1)
    record = await store.get(A)
    assert record is not None
    assert record.networks["hatena"].failed_at is None


async def test_forced_refresh_owes_every_network_a_fetch_until_it_answers(store: Store) -> None:
    await store.track(A, T0)
    await store.merge_counts("hatena", {A: 4}, T0 + 1)
    await store.merge_counts("hackernews", {A: 2}, T0 + 1)
    claim = await store.claim_due(T0 + 2, 10, T0 + 3, ["hatena", "hackernews", "reddit"])
    assert claim[A].fetched == {"hatena": T0 + 1, "hackernews": T0 + 1, "reddit": None}
    assert await store.refresh([A, B], T0 + 1) == 1
    assert await store.due_at(A) == T0 + 1
    await store.merge_counts("hatena", {A: 5}, T0 + 1)
    await store.mark_failed("hackernews", [A], T0 + 1)
    claim = await store.claim_due(T0 + 2, 10, T0 + 3, ["hatena", "hackernews"])
    assert claim[A].fetched == {"hatena": T0 + 1, "hackernews": None}
    record = await store.get(A)
    assert record is not None
    assert record.networks["hackernews"].fetched_at == T0 + 1, "the API still shows it"


async def test_refresh_domain_takes_the_domain_and_its_subdomains(store: Store) -> None:
    urls = {
        "https://example.com/": True,
        "https://blog.example.com:8443/x?y=1": True,
        "http://a.b.example.com/": True,
        "https://notexample.com/": False,
        "https://example.com.evil.test/": False,
        "http://[::1]:8080/": False,
    }
    await store.track_many(urls, T0)
    await store.reschedule(dict.fromkeys(urls, T0 + 5000))
    assert await store.refresh_domain("example.com", T0 + 10) == 3
    for url, chosen in urls.items():
        assert await store.due_at(url) == (T0 + 10 if chosen else T0 + 5000), url
    assert await store.refresh_domain("::1", T0 + 10) == 0
    assert await store.refresh_domain("[::1]", T0 + 20) == 1
    assert await store.refresh_all(T0 + 30) == len(urls)


async def packed_record(redis: Redis, url: str) -> bytes:
    """A record's bytes as Redis holds them (the client would otherwise decode them as text)."""
    command = redis.execute_command  # untyped in redis-py
    raw = await command("HGET", *record_location(url), **{NEVER_DECODE: True})  # type: ignore[no-untyped-call]
    assert isinstance(raw, bytes)
    return raw


async def test_two_urls_with_one_id_are_never_merged(store: Store, redis: Redis) -> None:
    # A 64-bit collision cannot be found on purpose: put B's record where A's belongs instead.
    await store.track(B, T0)
    raw = await packed_record(redis, B)
    await redis.hset(*record_location(A), raw)
    assert await store.get(A) is None
    with pytest.raises(UrlIdCollision):
        await store.track(A, T0)
    assert await store.track(B, T0) is False


async def test_records_are_packed_small(store: Store, redis: Redis) -> None:
    await store.track(A, T0)
    await store.merge_counts("facebook", {A: Observation(9, parts={"shares": 9})}, T0 + 1)
    await store.merge_counts("hatena", {A: 4}, T0 + 1)
    raw = await packed_record(redis, A)
    # URL, three times, two networks with a count and a time each, one part: no field names.
    assert len(raw) < len(A) + 40
    assert len(record_location(A)[1]) == 11
