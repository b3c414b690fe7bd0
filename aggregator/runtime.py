"""The objects one process shares for its lifetime: Redis, HTTP pools, providers, poller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aggregator.config import ConfigError, Settings, Source
from aggregator.fetch import Executor
from aggregator.gate import Gate
from aggregator.health import is_active
from aggregator.pools import Pools
from aggregator.schedule import Poller
from aggregator.sources import sources
from aggregator.store import Client, Store, UrlRecord
from providers.base import Provider
from providers.registry import discover


@dataclass(frozen=True)
class Runtime:
    """Everything a request handler or a tick needs, created in the app's lifespan."""

    settings: Settings
    store: Store
    gate: Gate
    providers: dict[str, type[Provider]]
    # Where each network's served number comes from (aggregator/sources.py).
    sources: dict[str, Source]
    # The providers that are on and configured, polled or counted by clicks.
    active: frozenset[str]
    poller: Poller

    def shown(self, record: UrlRecord) -> list[str]:
        """The networks a page's views list, in the registry's order: the active ones and any
        installed one that still holds a number for it."""
        held = record.networks
        return [name for name in self.providers if name in self.active or name in held]


# A URL in one of these schemes names a Redis Cluster by some of its nodes: the value says
# whether to use TLS.
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}


def redis_client(url: str, max_connections: int = 64) -> Client:
    """A client that reconnects by itself: a burst waits for a pooled connection, a command on
    a dropped connection reconnects and retries briefly, and then fails fast."""
    # A restart drops every pooled connection: a command on one reconnects and retries with
    # jittered backoff (at most 0.1, 0.2, 0.4 s), so that a restart goes unnoticed.
    # While it stays away, a read gives up within about half a second (the API answers from its
    # last-served cache or 503) instead of redis-py's default of seconds.
    retry = Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries=3)
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        # A connection idle this long is PINGed before use: a half-open one is replaced.
        "health_check_interval": 5,
        "retry": retry,
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    parts = urlsplit(url)
    if parts.scheme in CLUSTER_SCHEMES:
        return cluster_client(parts, max_connections, options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, **options
    )
    return Redis.from_pool(pool)


def cluster_client(
    parts: SplitResult, max_connections: int, options: dict[str, Any]
) -> RedisCluster:
    """A cluster client for `redis+cluster://[user:password@]host:port,host:port,...`: the
    nodes listed are where it learns the cluster's layout, so any few of them will do."""
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{node!r} in FLARES_REDIS_URL is not host:port")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    user, _, password = userinfo.partition(":")
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(user) or None,
        password=unquote(password) or None,
        ssl=CLUSTER_SCHEMES[parts.scheme],
        # Per node; the cluster's pools fail a command when all are busy instead of making it
        # wait, so a burst gets room to spare.
        max_connections=max_connections * 16,
        **options,
    )


@asynccontextmanager
async def open_runtime(settings: Settings, redis_url: str) -> AsyncIterator[Runtime]:
    """Open the shared clients and close them when the block ends."""
    providers = discover()
    active = {name: cls for name, cls in providers.items() if is_active(cls, settings)}
    served_from = sources(settings, providers)
    # A network shown by clicks alone is never called: its API has no number to give.
    polled = {name: cls for name, cls in active.items() if served_from[name] != "clicks"}
    redis = redis_client(redis_url)
    try:
        async with Pools() as pools:
            store, gate = Store(redis, history_days=settings.history_days), Gate(redis)
            poller = Poller(store, Executor(pools, settings, gate), polled, settings)
            yield Runtime(
                settings=settings,
                store=store,
                gate=gate,
                providers=providers,
                sources=served_from,
                active=frozenset(active),
                poller=poller,
            )
    finally:
        await redis.aclose()
