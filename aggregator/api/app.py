"""The FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aggregator.api import (
    admin,
    badges,
    bar,
    bulk,
    counts,
    errors,
    history,
    metrics,
    probes,
    providers,
    share,
    shields,
    sites,
    status,
    widget,
)
from aggregator.config import Settings
from aggregator.runtime import open_runtime
from aggregator.schedule import start_scheduler


def create_app(settings: Settings, redis_url: str, *, scheduler: bool = True) -> FastAPI:
    """The API over the Redis at `redis_url`; runs the scheduler in-process unless told not to."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, redis_url) as runtime:
            app.state.runtime = runtime
            ticker = (
                start_scheduler(runtime.poller, settings.schedule.tick_seconds)
                if scheduler
                else None
            )
            try:
                yield
            finally:
                if ticker is not None:
                    ticker.shutdown(wait=False)
                    await runtime.poller.idle()

    app = FastAPI(
        title="flares",
        summary="Social share counts, polled on a schedule and served from Redis",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    app.state.sites = sites.SiteCache()
    # Per app, not per module: two apps in one process (the tests) must not share counters.
    app.state.badge_metrics = metrics.BadgeMetrics()
    app.add_middleware(metrics.CountBadgeRequests, metrics=app.state.badge_metrics)
    # Before the badges: their `/badge/{network}.svg` would take `/badge/trend.svg` for a network.
    app.include_router(history.router)
    for module in (counts, badges, providers, probes):
        app.include_router(module.router)
    app.include_router(widget.router)
    app.include_router(share.router)
    app.include_router(bar.router)
    app.include_router(shields.router)
    app.include_router(bulk.router)
    app.include_router(admin.router)
    app.include_router(sites.router)
    app.include_router(status.router)
    app.include_router(metrics.router)
    return app
