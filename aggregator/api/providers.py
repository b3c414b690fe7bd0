"""Provider health over HTTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import APIRouter

from aggregator.api.counts import timestamp
from aggregator.api.deps import RuntimeDep
from aggregator.api.errors import ApiError
from aggregator.api.models import (
    Breaker,
    BudgetOut,
    ErrorBody,
    HourStats,
    LastError,
    ProviderOut,
    ProvidersResponse,
    QueueOut,
)
from aggregator.gate import limits_for
from aggregator.health import assess, is_enabled, latency_quantile, missing_settings, suspicion
from aggregator.runtime import Runtime
from aggregator.store import ProviderRecord, ProviderStats

router = APIRouter(prefix="/api/v1", tags=["providers"])


@dataclass(frozen=True)
class Readings:
    """What Redis holds on the providers' health, read once for a view of it."""

    now: float
    records: dict[str, ProviderRecord]
    stats: dict[str, ProviderStats]
    used: dict[str, float]
    tracked: int
    due: int
    oldest: float | None


async def read_health(runtime: Runtime, names: list[str]) -> Readings:
    now = time.time()
    store = runtime.store
    windows = {n: limits_for(runtime.providers[n], runtime.settings).window for n in names}
    records, stats, used, tracked, (due, oldest) = await asyncio.gather(
        store.providers(names),
        store.stats(names, now),
        runtime.gate.used(windows, now),
        store.tracked_count(),
        store.queue(now),
    )
    return Readings(now, records, stats, used, tracked, due, oldest)


async def provider_views(runtime: Runtime, names: list[str]) -> list[ProviderOut]:
    return views_of(runtime, await read_health(runtime, names))


def views_of(runtime: Runtime, readings: Readings) -> list[ProviderOut]:
    """Each provider's health as the API shows it, from one set of readings."""
    now, tracked, oldest = readings.now, readings.tracked, readings.oldest
    queue = QueueOut(due_now=readings.due, oldest_due_seconds=now - oldest if oldest else None)
    views = []
    for name, record in readings.records.items():
        cls, hour = runtime.providers[name], readings.stats[name].hour
        verdict = assess(cls, runtime.settings, record, hour, now, runtime.sources[name])
        limits = limits_for(cls, runtime.settings)
        used = readings.used[name]
        answered = hour.ok + hour.failed
        views.append(
            ProviderOut(
                name=name,
                label=cls.label,
                status=cls.status.value,
                status_since=cls.status_since,
                docs_url=cls.docs_url,
                enabled=is_enabled(cls, runtime.settings),
                configured=not missing_settings(cls, runtime.settings),
                state=verdict.state,
                reason=verdict.reason,
                since=timestamp(verdict.since),
                suspect=suspicion(hour, runtime.settings),
                batch_size=cls.batch_size,
                last_success_at=timestamp(record.last_success_at),
                last_error_at=timestamp(record.last_failure_at),
                last_error=LastError(
                    kind=record.last_error_kind,
                    status=record.last_error_status,
                    message=record.last_error,
                )
                if record.last_error is not None
                else None,
                hour=HourStats(
                    requests=hour.requests,
                    ok=hour.ok,
                    failed=hour.failed,
                    neutral=hour.neutral,
                    success_ratio=hour.ok / answered if answered else None,
                    latency_p50=latency_quantile(hour, 0.5),
                    latency_p95=latency_quantile(hour, 0.95),
                ),
                budget=BudgetOut(
                    limit=limits.budget,
                    window_seconds=limits.window,
                    used=round(used, 2),
                    left=round(max(0.0, limits.budget - used), 2),
                    concurrency=limits.concurrency,
                ),
                urls_tracked=tracked if name in runtime.poller.provider_names else 0,
                queue=queue,
                breaker=Breaker(
                    state=record.breaker(now),
                    since=timestamp(record.breaker_since),
                    next_probe=timestamp(record.breaker_until),
                ),
            )
        )
    return views


@router.get("/providers", response_model=ProvidersResponse)
async def list_providers(runtime: RuntimeDep) -> ProvidersResponse:
    """Every installed provider: the network's status, our settings and how our calls go."""
    return ProvidersResponse(providers=await provider_views(runtime, list(runtime.providers)))


@router.get(
    "/providers/{name}",
    response_model=ProviderOut,
    responses={404: {"model": ErrorBody, "description": "No such provider"}},
)
async def get_provider(runtime: RuntimeDep, name: str) -> ProviderOut:
    """One provider's health."""
    if name not in runtime.providers:
        raise ApiError(404, "unknown provider", f"installed: {', '.join(runtime.providers)}")
    return (await provider_views(runtime, [name]))[0]
