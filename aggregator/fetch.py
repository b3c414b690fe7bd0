"""Runs one provider over a batch of URLs: the only place that talks to the networks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, quote_plus

import httpx

from aggregator.config import Settings
from providers.base import ParseError, Provider, ProviderRequest

ErrorKind = Literal["request", "timeout", "connect", "http", "parse", "missing"]
MAX_MESSAGE = 200


@dataclass(frozen=True)
class FetchError:
    """Why a URL got no data; the message holds no secret."""

    kind: ErrorKind
    message: str
    status: int | None = None


@dataclass
class FetchOutcome:
    """Counts for the URLs that got data, and the error of each that did not."""

    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, FetchError] = field(default_factory=dict)


def scrub(message: str, secrets: Iterable[str]) -> str:
    """Remove every secret, raw or URL-encoded, from a message and cut it short."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                message = message.replace(form, "***")
    return message[:MAX_MESSAGE]


def chunks(urls: Sequence[str], size: int) -> list[Sequence[str]]:
    return [urls[i : i + size] for i in range(0, len(urls), max(1, size))]


class Executor:
    """Sends providers' requests through one pooled client with timeouts and bounded concurrency."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.schedule.concurrency)

    async def run(self, provider: type[Provider], urls: Sequence[str]) -> FetchOutcome:
        """Fetch every URL in batches of the provider's size; errors are results, not raises."""
        outcome = FetchOutcome()
        parts = await asyncio.gather(
            *(self._batch(provider, batch) for batch in chunks(urls, provider.batch_size))
        )
        for part in parts:
            outcome.counts.update(part.counts)
            outcome.errors.update(part.errors)
        return outcome

    async def _batch(self, provider: type[Provider], urls: Sequence[str]) -> FetchOutcome:
        conf = self._settings.provider(provider.name)
        secrets = conf.credential_values()
        try:
            request = provider.build_request(urls, conf.base_url, secrets)
        except ValueError as exc:
            message = scrub(f"cannot build the request: {exc}", secrets.values())
            return _failed(urls, FetchError("request", message))
        try:
            async with self._slots:
                response = await self._send(request, limit=conf.timeout)
        except httpx.TimeoutException:
            return _failed(urls, FetchError("timeout", f"no answer within {conf.timeout:g} s"))
        except httpx.HTTPError as exc:
            text = scrub(f"{type(exc).__name__}: {exc}", secrets.values())
            return _failed(urls, FetchError("connect", text))
        if not response.is_success:
            message = scrub(
                f"HTTP {response.status_code} {response.reason_phrase}", secrets.values()
            )
            return _failed(urls, FetchError("http", message, response.status_code))
        try:
            counts = provider.parse(urls, response.content)
        except ParseError as exc:
            return _failed(urls, FetchError("parse", scrub(str(exc), secrets.values())))
        outcome = FetchOutcome(counts={u: counts[u] for u in urls if u in counts})
        missing = FetchError("missing", "the answer held no count for this URL")
        outcome.errors = {u: missing for u in urls if u not in counts}
        return outcome

    async def _send(self, request: ProviderRequest, *, limit: float) -> httpx.Response:
        headers = {"User-Agent": self._settings.user_agent, **request.headers}
        return await self._client.request(
            request.method,
            request.url,
            params=list(request.params),
            headers=headers,
            timeout=limit,
        )


def _failed(urls: Sequence[str], error: FetchError) -> FetchOutcome:
    return FetchOutcome(errors=dict.fromkeys(urls, error))
