"""The objects one process shares for its lifetime: Redis, HTTP pools, providers, poller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

from aggregator.config import Settings, Source
from aggregator.fetch import Executor
from aggregator.gate import Gate
from aggregator.health import is_active
from aggregator.pools import Pools
from aggregator.schedule import Poller
from aggregator.sources import sources
from aggregator.store import Store, UrlRecord
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


def redis_client(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool makes a burst of requests wait for a connection instead of failing."""
    # Short timeouts: a read must fail fast (and answer 503) rather than hang while Redis is away.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=10,
        retry_on_timeout=True,
    )
    return Redis.from_pool(pool)


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
