"""The FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from aggregator import heap
from aggregator.api import (
    admin,
    aliases,
    badges,
    bar,
    bulk,
    counts,
    errors,
    guards,
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
from aggregator.api.lastserved import LastServed
from aggregator.api.request_log import RequestLog
from aggregator.config import Settings
from aggregator.runtime import open_runtime
from aggregator.schedule import start_scheduler


class FlaresApp(FastAPI):
    """FastAPI with the request log around everything, the 500 handler included, so that an
    unexpected error's log record and answer carry the request id too."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestLog(super().build_middleware_stack())


def create_app(
    settings: Settings,
    redis_url: str,
    *,
    scheduler: bool = True,
    insecure_open: bool = False,
    tuned_gc: bool = False,
) -> FastAPI:
    """The API over the Redis at `redis_url`; runs the scheduler in-process unless told not to.
    `insecure_open` lets anyone write while no admin key is configured (`--insecure-open`);
    `tuned_gc` tunes the process's garbage collector while the app runs (`flares serve`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(open_runtime(settings, redis_url))
            if tuned_gc:
                stack.enter_context(heap.tuned_gc())
            app.state.runtime = runtime
            # Lives and dies with this app: what its readers were last shown, for Redis outages.
            app.state.last_served = LastServed(settings.last_served)
            ticker = (
                start_scheduler(runtime.poller, settings.schedule.tick_seconds)
                if scheduler
                else None
            )
            try:
                yield
            finally:
                if ticker is not None:
                    await runtime.poller.stop()
                    ticker.shutdown(wait=False)

    app = FlaresApp(
        title="flares",
        summary="Social share counts, polled on a schedule and served from Redis",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    app.state.insecure_open = insecure_open
    guards.install(app, settings.limits.max_body_bytes)
    app.state.sites = sites.SiteCache()
    # Per app, not per module: two apps in one process (the tests) must not share counters.
    app.state.badge_metrics = metrics.BadgeMetrics()
    app.add_middleware(metrics.CountBadgeRequests, metrics=app.state.badge_metrics)
    # The reads that pages embed come first: FastAPI tries the routers in turn, and the bar
    # after seven of them cost 40 us a request. History before the badges: their
    # `/badge/{network}.svg` would take `/badge/trend.svg` for a network.
    app.include_router(counts.router)
    app.include_router(history.router)
    for module in (badges, bar, providers, probes):
        app.include_router(module.router)
    app.include_router(widget.router)
    app.include_router(share.router)
    app.include_router(shields.router)
    app.include_router(bulk.router)
    app.include_router(admin.router)
    app.include_router(aliases.router)
    app.include_router(sites.router)
    app.include_router(status.router)
    app.include_router(metrics.router)
    return app
