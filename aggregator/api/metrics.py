"""GET /metrics for Prometheus, and the per-process counters of the badge routes."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.api.deps import RuntimeDep
from aggregator.api.providers import read_health, views_of
from aggregator.metrics import ProviderSample, Snapshot, SnapshotCollector
from aggregator.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(tags=["metrics"])
# The routes whose requests are counted: what publishers embed, so what visitors load.
BADGE_ROUTES = frozenset(
    {"/badge.svg", "/badge/{network}.svg", "/badge/trend.svg", "/bar.svg", "/widget"}
)


class BadgeMetrics:
    """This process's counters of badge requests, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "flares_badge_requests",
            "Requests to the badge, bar and widget routes served by this process",
            ["route", "status"],
            registry=self.registry,
        )
        self._cache_hits = Counter(
            "flares_badge_cache_hits",
            "Badge requests this process answered 304 because If-None-Match held the ETag",
            registry=self.registry,
        )
        self._counters: dict[tuple[str, int], Counter] = {}

    def count(self, route: str, status: int) -> None:
        counter = self._counters.get((route, status))
        if counter is None:
            # Found once per route and status: prometheus-client's labels() checks and locks.
            counter = self._counters[route, status] = self._requests.labels(route, str(status))
        counter.inc()
        if status == 304:
            self._cache_hits.inc()


class CountBadgeRequests:
    """ASGI middleware that counts the answers of the badge routes by route and status."""

    def __init__(self, app: ASGIApp, metrics: BadgeMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        answered = False

        def route() -> str | None:
            # The router records the matched route in the scope; its path is the template, so
            # a label never holds a visitor's URL.
            path = getattr(scope.get("route"), "path", None)
            return path if path in BADGE_ROUTES else None

        async def counting(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                if (matched := route()) is not None:
                    self._metrics.count(matched, message["status"])
            await send(message)

        try:
            await self._app(scope, receive, counting)
        except Exception:
            # The outermost middleware turns this into a 500, past this one: count it here.
            if not answered and (matched := route()) is not None:
                self._metrics.count(matched, 500)
            raise


async def read_snapshot(runtime: Runtime) -> Snapshot:
    """The shared state as /api/v1/providers shows it, plus the counts since the start."""
    readings = await read_health(runtime, list(runtime.providers))
    views = views_of(runtime, readings)
    now, oldest = readings.now, readings.oldest
    return Snapshot(
        providers=[
            ProviderSample(
                name=view.name,
                state=view.state,
                suspect=view.suspect is not None,
                breaker=view.breaker.state,
                budget_limit=view.budget.limit,
                budget_left=view.budget.left,
                lifetime=readings.stats[view.name].lifetime,
            )
            for view in views
        ],
        urls_tracked=readings.tracked,
        urls_due=readings.due,
        refresh_lag=now - oldest if oldest is not None else 0.0,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "Prometheus text format"},
        503: {"content": {"text/plain": {}}, "description": "Redis does not answer"},
    },
)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Provider requests, latencies, budgets, breakers and states, and the due queue, as every
    worker recorded them in Redis; and this process's badge requests."""
    try:
        snapshot = await read_snapshot(runtime)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Not the JSON error: a scraper shows this body as the reason the target is down.
        log.warning("metrics: Redis unavailable: %s", exc)
        return PlainTextResponse(
            "Redis does not answer; no metrics\n", status_code=503, headers={"Retry-After": "5"}
        )
    # prometheus-client collects synchronously: it gets data already read, never a Redis call.
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot))
    badge_metrics: BadgeMetrics = request.app.state.badge_metrics
    registry.register(badge_metrics.registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
