"""Provider health over HTTP."""

from __future__ import annotations

import time

from fastapi import APIRouter

from aggregator.api.counts import timestamp
from aggregator.api.deps import RuntimeDep
from aggregator.api.errors import ApiError
from aggregator.api.models import Breaker, ErrorBody, ProviderOut, ProvidersResponse
from aggregator.health import assess, is_enabled, missing_settings
from aggregator.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["providers"])


async def provider_views(runtime: Runtime, names: list[str]) -> list[ProviderOut]:
    records = await runtime.store.providers(names)
    tracked = await runtime.store.tracked_count()
    now = time.time()
    views = []
    for name in names:
        cls, record = runtime.providers[name], records[name]
        verdict = assess(cls, runtime.settings, record, now)
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
                batch_size=cls.batch_size,
                last_success_at=timestamp(record.last_success_at),
                last_error_at=timestamp(record.last_failure_at),
                last_error=record.last_error,
                urls_tracked=tracked if name in runtime.poller.provider_names else 0,
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
