"""HTTP connection pools, one per provider, owned by a process for its lifetime."""

from __future__ import annotations

from types import TracebackType

import httpx

# A little over the provider's concurrency: an auth step may overlap the last batch's
# connection being returned, and a request must not wait on the pool for that.
HEADROOM = 2


class Pools:
    """One pooled client per provider, sized to its concurrency: a slow network cannot hold
    another's connections, and httpcore, which scans its whole pool on every request, scans few."""

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, provider: str, concurrency: int) -> httpx.AsyncClient:
        """The provider's client, made on first use."""
        client = self._clients.get(provider)
        if client is None:
            size = concurrency + HEADROOM
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            client = httpx.AsyncClient(limits=limits, follow_redirects=False)
            self._clients[provider] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Pools:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()
