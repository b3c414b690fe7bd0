"""Redis Cluster: the URL form, keys that share a slot, and writes that survive a failover."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from aggregator.config import ConfigError, mask_url
from aggregator.runtime import redis_client
from aggregator.store import (
    SHARDS,
    NotReplicated,
    Store,
    alias_location,
    due_key,
    due_location,
    history_location,
    record_location,
    shard_of,
    url_id,
    visitors_key,
)
from tests.cluster import MASTERS, Cluster, Node, running_cluster
from tests.service import wait_for

T0 = 1_700_000_000.0
URLS = [f"https://example.com/f/{i}" for i in range(200)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of this module's own: its tests kill and pause nodes."""
    with running_cluster(tmp_path_factory.mktemp("failover")) as started:
        yield started


async def test_a_cluster_url_lists_some_of_its_nodes() -> None:
    client = redis_client("redis+cluster://u:s3cret@127.0.0.1:7000, 127.0.0.1:7001")
    assert isinstance(client, RedisCluster)
    await client.aclose()
    with pytest.raises(ConfigError, match=r"'127\.0\.0\.1' in FLARES_REDIS_URL is not host:port"):
        redis_client("redis+cluster://127.0.0.1:7000,127.0.0.1")
    shown = mask_url("redis+cluster://u:s3cret@10.0.0.1:7000,10.0.0.2:7000")
    assert shown == "redis+cluster://u:***@10.0.0.1:7000,10.0.0.2:7000"


def test_a_urls_keys_share_one_slot_and_shards_spread_evenly() -> None:
    for url in URLS:
        ident = url_id(url)
        keys = [
            record_location(url)[0],
            history_location(url)[0],
            alias_location(url)[0],
            due_location(url)[0],
            due_key(shard_of(url)),
            visitors_key(ident, 3, 20_000),
        ]
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys
    # Masters that split the slots evenly (as the fixture and `--cluster create` do) hold
    # about as many shards each.
    per_master = Counter(key_slot(due_key(s).encode()) * MASTERS // 16384 for s in range(SHARDS))
    assert sorted(per_master.values()) == [21, 21, 22]


async def test_a_write_that_no_replica_acknowledged_fails(cluster: Cluster) -> None:
    redis = redis_client(cluster.url)
    try:
        await redis.flushdb()
        store = Store(redis, replica_wait_ms=200)
        url = URLS[0]
        await store.track(url, T0)
        replica = cluster.replica_of(cluster.master_of(due_key(shard_of(url))))
        replica.pause()
        try:
            with pytest.raises(NotReplicated):
                await store.merge_counts("hatena", {url: 5}, T0 + 1)
        finally:
            replica.resume()
        await store.merge_counts("hatena", {url: 6}, T0 + 2)
        record = await store.get(url)
        assert record is not None
        assert record.networks["hatena"].count == 6
    finally:
        await redis.aclose()


def promoted(node: Node) -> bool | None:
    with node.client() as redis:
        return redis.info("replication")["role"] == "master" or None


async def test_a_failover_loses_no_acknowledged_count(cluster: Cluster) -> None:
    redis = redis_client(cluster.url)
    store = Store(redis, replica_wait_ms=500)
    acked: dict[str, int] = {}
    refused = 0
    stop = asyncio.Event()

    async def write() -> None:
        """Every URL's count rises each round; a round counts as done only when merge_counts
        returned without an error."""
        nonlocal refused
        n = 0
        while not stop.is_set():
            n += 1
            try:
                await store.merge_counts("hatena", dict.fromkeys(URLS, n), T0 + n)
            except (RedisError, RedisClusterException):
                refused += 1
                await asyncio.sleep(0.05)
            else:
                acked.update(dict.fromkeys(URLS, n))

    def rounds_after(done: int) -> bool | None:
        return acked.get(URLS[0], 0) > done or None

    try:
        await redis.flushdb()
        await store.track_many(URLS, T0)
        victim = cluster.master_of(due_key(shard_of(URLS[0])))
        heir = cluster.replica_of(victim)
        writer = asyncio.create_task(write())
        await asyncio.to_thread(wait_for, lambda: rounds_after(2), "writes before the kill")
        # Killed mid-run: the writer is in the middle of a round at any moment.
        await asyncio.to_thread(victim.kill)
        killed_at = acked[URLS[0]]
        await asyncio.to_thread(wait_for, lambda: promoted(heir), "the replica to take over")
        # Back as the new master's replica, so that its writes are acknowledged again.
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(cluster.wait_healthy)
        await asyncio.to_thread(wait_for, lambda: rounds_after(killed_at + 2), "writes after")
        stop.set()
        await writer
        records = await store.get_many(URLS)
        for url in URLS:
            record = records[url]
            assert record is not None
            assert (record.networks["hatena"].count or 0) >= acked[url], url
        assert refused > 0, "the failover held writes back for a while"
    finally:
        stop.set()
        await redis.aclose()
