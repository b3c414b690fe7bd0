"""Provider health over HTTP."""

from __future__ import annotations

import time

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

router = APIRouter(prefix="/api/v1", tags=["providers"])


async def provider_views(runtime: Runtime, names: list[str]) -> list[ProviderOut]:
    now = time.time()
    store = runtime.store
    records = await store.providers(names)
    stats = await store.stats(names, now)
    tracked = await store.tracked_count()
    due, oldest = await store.queue(now)
    queue = QueueOut(due_now=due, oldest_due_seconds=now - oldest if oldest else None)
    views = []
    for name in names:
        cls, record, hour = runtime.providers[name], records[name], stats[name].hour
        verdict = assess(cls, runtime.settings, record, hour, now)
        limits = limits_for(cls, runtime.settings)
        used = await runtime.gate.used(name, limits.window, now)
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
