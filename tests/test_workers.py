"""Three `flares worker` processes share one queue; one dies by SIGKILL mid-batch."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

from aggregator.runtime import redis_client
from aggregator.store import Store
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import FlaresProcess, providers_env, wait_for

N = 2000
URLS = [f"https://example.com/post/{i}" for i in range(N)]
NETWORKS = ("hackernews", "hatena")


def worker_env(fake: FakeUpstream, redis_url: str, name: str) -> dict[str, str]:
    return {
        "FLARES_REDIS_URL": redis_url,
        "FLARES_USER_AGENT": name,
        "FLARES_SCHEDULE__TICK_SECONDS": "0.1",
        "FLARES_SCHEDULE__CLAIM_SIZE": "50",
        "FLARES_SCHEDULE__LEASE_SECONDS": "3",
        # One due period spans the whole test: every URL is owed exactly one fetch.
        "FLARES_SCHEDULE__FRESH_INTERVAL": "3600",
        "FLARES_SCHEDULE__RETRIES": "0",
        "FLARES_PROVIDERS__HACKERNEWS__CONCURRENCY": "24",
        "FLARES_PROVIDERS__HATENA__CONCURRENCY": "4",
        "FLARES_PROVIDERS__HATENA__BUDGET_REQUESTS": "1000",
        **providers_env(fake.base_url, NETWORKS),
    }


async def track_all(redis_url: str) -> None:
    redis = redis_client(redis_url)
    try:
        await redis.flushdb()
        store = Store(redis)
        now = time.time()
        await asyncio.gather(*(store.track(url, now) for url in URLS))
    finally:
        await redis.aclose()


async def counted(redis_url: str) -> int:
    """How many URLs have a count from every network."""
    redis = redis_client(redis_url)
    try:
        records = await asyncio.gather(*(Store(redis).get(url) for url in URLS))
    finally:
        await redis.aclose()
    return sum(
        1 for r in records if r and all(r.networks.get(n) and r.networks[n].count for n in NETWORKS)
    )


def requests_per_url(fake: FakeUpstream) -> dict[tuple[str, str], Counter[str]]:
    """For each (network, URL): how many requests asked for it, by worker (its User-Agent)."""
    seen: dict[tuple[str, str], Counter[str]] = {}
    for call in fake.calls():
        worker = dict(call.headers).get("user-agent", "?")
        key = "query" if call.network == "hackernews" else "url"
        for name, value in call.params:
            if name == key and call.network is not None:
                seen.setdefault((call.network, value), Counter())[worker] += 1
    return seen


def test_workers_share_the_queue_and_survive_a_sigkill(
    fake_upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    for i, url in enumerate(URLS):
        for network in NETWORKS:
            fake_upstream.set_count(network, url, i % 9 + 1)
    # Slow answers keep batches in flight long enough to kill a worker in the middle of one.
    fake_upstream.set_fault(None, Fault("latency", seconds=0.02))
    asyncio.run(track_all(redis_url))
    workers = [
        FlaresProcess(
            ["worker"], worker_env(fake_upstream, redis_url, f"w{i}"), tmp_path / f"w{i}.log"
        )
        for i in range(3)
    ]
    for worker in workers:
        worker.start()
    victim = workers[0]
    try:
        wait_for(
            lambda: (
                sum(dict(c.headers).get("user-agent") == "w0" for c in fake_upstream.calls()) >= 30
                or None
            ),
            "the first worker to be in the middle of its work",
        )
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        wait_for(
            lambda: asyncio.run(counted(redis_url)) == N or None,
            "every URL to be counted by the surviving workers",
            timeout=60,
        )
    finally:
        for worker in workers[1:]:
            assert worker.stop() == 0, worker.output()

    seen = requests_per_url(fake_upstream)
    assert {url for _, url in seen} == set(URLS)
    by_victim = {key for key, workers_ in seen.items() if workers_["w0"]}
    assert by_victim, "the killed worker had fetched something"
    for key, per_worker in seen.items():
        survivors = per_worker["w1"] + per_worker["w2"]
        # A request of the killed worker may have lost its answer: then one survivor asks again.
        assert survivors <= 1, (key, per_worker)
        assert sum(per_worker.values()) == 1 or key in by_victim, (key, per_worker)
    assert sum(1 for w in seen.values() if w["w1"] or w["w2"]) > 0
