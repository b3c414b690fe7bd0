"""GET /metrics in-process over ASGI, against a real Redis and the fake upstream, read back with
prometheus-client's own parser."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import get_args

import httpx
from prometheus_client import Metric
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aggregator.api.metrics import BADGE_ROUTES, BadgeMetrics, CountBadgeRequests
from aggregator.health import State
from aggregator.metrics import BUCKETS, OUTCOMES
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import free_port
from tests.test_api import PAGE, ApiFactory, make_api
from tests.test_badge_api import seed

# Imported for pytest: the fixture is found by its name in this module.
__all__ = ["make_api"]

PAGES = [f"https://blog.example.com/{i}" for i in range(3)]
# A window no test outlives, so that the budget's sliding window never fades a count.
BUDGET = {"budget_requests": 100, "budget_window": 1e6}
# Failed URLs come back after 10 minutes: none is due again while a test looks.
SCHEDULE = {"retries": 0, "jitter": 0.0, "retry_interval": 600.0}
PROVIDER_FAMILIES = {
    "flares_provider_requests": "counter",
    "flares_provider_request_duration_seconds": "histogram",
    "flares_provider_budget_left": "gauge",
    "flares_provider_budget_limit": "gauge",
    "flares_provider_breaker_state": "gauge",
    "flares_provider_state": "gauge",
    "flares_provider_suspect": "gauge",
    "flares_urls_tracked": "gauge",
    "flares_urls_due": "gauge",
    "flares_refresh_lag_seconds": "gauge",
}
BADGE_FAMILIES = {"flares_badge_requests": "counter", "flares_badge_cache_hits": "counter"}


class Scrape:
    """One /metrics page, parsed by prometheus-client."""

    def __init__(self, text: str) -> None:
        self.families: dict[str, Metric] = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The value of the one sample with this name and exactly these labels."""
        found = [
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and s.labels == labels
        ]
        assert len(found) == 1, f"{sample}{labels}: {len(found)} samples"
        return found[0]

    def labels(self, sample: str) -> list[dict[str, str]]:
        """The label sets of every sample of this name."""
        return [s.labels for f in self.families.values() for s in f.samples if s.name == sample]

    def requests(self, provider: str) -> dict[str, float]:
        """A provider's request counters by outcome."""
        return {
            outcome: self.value(
                "flares_provider_requests_total", provider=provider, outcome=outcome
            )
            for outcome in OUTCOMES
        }

    def one_of(self, family: str, provider: str) -> str:
        """The state a one-of-many gauge family marks with 1 for this provider."""
        marked = [
            s.labels["state"]
            for s in self.families[family].samples
            if s.labels["provider"] == provider and s.value == 1
        ]
        assert len(marked) == 1, marked
        return marked[0]


async def scrape(api: httpx.AsyncClient) -> Scrape:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(response.text)


def assert_histogram(metrics: Scrape, provider: str, requests: int) -> None:
    """Cumulative buckets in order, the last (+Inf) and the count equal to the requests."""
    name = "flares_provider_request_duration_seconds"
    buckets = [metrics.value(name + "_bucket", provider=provider, le=le) for le in BUCKETS]
    assert all(a <= b for a, b in pairwise(buckets)), buckets
    assert buckets[-1] == metrics.value(name + "_count", provider=provider) == requests
    assert (metrics.value(name + "_sum", provider=provider) > 0) == (requests > 0)


async def test_every_metric_parses_and_says_what_it_is(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        metrics = await scrape(api)
    kinds = {name: family.type for name, family in metrics.families.items()}
    # prometheus-client's own counters add when they began, as a gauge of their own.
    assert kinds == PROVIDER_FAMILIES | BADGE_FAMILIES | {
        "flares_badge_cache_hits_created": "gauge"
    }
    for family in metrics.families.values():
        assert family.documentation, f"{family.name} has no HELP"
    assert metrics.value("flares_urls_tracked") == 0
    assert metrics.value("flares_refresh_lag_seconds") == 0
    assert metrics.one_of("flares_provider_state", "hatena") == "pending"
    assert metrics.one_of("flares_provider_state", "linkedin") == "retired"
    assert metrics.one_of("flares_provider_state", "vk") == "disabled"
    assert metrics.one_of("flares_provider_breaker_state", "hatena") == "closed"


async def test_counters_are_the_requests_the_networks_saw(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    providers = {"hackernews": BUDGET, "hatena": BUDGET}
    fake_upstream.set_fault("hatena", Fault("status", status=503))
    async with make_api(providers=providers, schedule=SCHEDULE) as (api, runtime):
        for page in PAGES:
            await runtime.store.track(page, time.time())
        for _ in range(2):
            await runtime.store.refresh(PAGES, time.time())
            await runtime.poller.tick()
        metrics = await scrape(api)
        views = {p["name"]: p for p in (await api.get("/api/v1/providers")).json()["providers"]}

    hackernews, hatena = fake_upstream.calls("hackernews"), fake_upstream.calls("hatena")
    # One request per page for Hacker News, one batch for Hatena, per tick.
    assert (len(hackernews), len(hatena)) == (6, 2)
    assert metrics.requests("hackernews") == {"ok": 6, "failed": 0, "neutral": 0}
    assert metrics.requests("hatena") == {"ok": 0, "failed": 2, "neutral": 0}
    assert metrics.requests("vk") == {"ok": 0, "failed": 0, "neutral": 0}
    assert_histogram(metrics, "hackernews", 6)
    assert_histogram(metrics, "hatena", 2)
    assert_histogram(metrics, "vk", 0)
    for name, calls in (("hackernews", hackernews), ("hatena", hatena)):
        limit = metrics.value("flares_provider_budget_limit", provider=name)
        assert limit == 100
        assert metrics.value("flares_provider_budget_left", provider=name) == limit - len(calls)
        assert metrics.one_of("flares_provider_state", name) == views[name]["state"]
        assert metrics.value("flares_provider_suspect", provider=name) == 0
    assert metrics.one_of("flares_provider_state", "hackernews") == "ok"
    assert metrics.one_of("flares_provider_state", "hatena") == "failing"
    assert metrics.one_of("flares_provider_breaker_state", "hatena") == "closed"
    assert len(metrics.labels("flares_provider_state")) == 13 * len(get_args(State)), (
        "every state of every provider"
    )
    assert metrics.value("flares_urls_tracked") == 3
    assert metrics.value("flares_urls_due") == 0
    assert metrics.value("flares_refresh_lag_seconds") == 0


async def test_the_queue_and_its_lag(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        for page in PAGES:
            await runtime.store.track(page, time.time())
        await runtime.store.reschedule({PAGES[0]: time.time() - 30, PAGES[1]: time.time() - 5})
        await runtime.store.reschedule({PAGES[2]: time.time() + 600})
        metrics = await scrape(api)
    assert metrics.value("flares_urls_tracked") == 3
    assert metrics.value("flares_urls_due") == 2
    assert 30 <= metrics.value("flares_refresh_lag_seconds") < 40


async def test_every_api_process_reports_what_any_worker_did(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_fault("hatena", Fault("status", status=500))
    async with make_api() as (worker_api, worker), make_api() as (other_api, _):
        await worker.store.track(PAGE, time.time())
        await worker.poller.tick()
        here, there = await scrape(worker_api), await scrape(other_api)
    for name in ("hackernews", "hatena"):
        assert here.requests(name) == there.requests(name)
        assert here.one_of("flares_provider_state", name) == there.one_of(
            "flares_provider_state", name
        )
    assert there.requests("hatena")["failed"] == len(fake_upstream.calls("hatena")) == 1
    assert there.value("flares_urls_tracked") == 1


async def test_badge_requests_and_cache_hits_are_counted_per_process(
    make_api: ApiFactory,
) -> None:
    async with make_api() as (api, runtime), make_api() as (other_api, _):
        await seed(runtime, {"hackernews": 12})
        first = await api.get("/badge.svg", params={"url": PAGE})
        cached = await api.get(
            "/badge.svg", params={"url": PAGE}, headers={"If-None-Match": first.headers["etag"]}
        )
        stale = await api.get("/badge.svg", params={"url": PAGE}, headers={"If-None-Match": '"x"'})
        for network in ("hackernews", "nope"):
            await api.get(f"/badge/{network}.svg", params={"url": PAGE})
        await api.get("/bar.svg", params={"url": PAGE})
        await api.get("/widget", params={"url": PAGE})
        await api.get("/api/v1/counts", params={"url": PAGE})
        metrics, other = await scrape(api), await scrape(other_api)
    assert (first.status_code, cached.status_code, stale.status_code) == (200, 304, 200)
    counted = {
        (labels["route"], labels["status"]): metrics.value("flares_badge_requests_total", **labels)
        for labels in metrics.labels("flares_badge_requests_total")
    }
    assert counted == {
        ("/badge.svg", "200"): 2,
        ("/badge.svg", "304"): 1,
        ("/badge/{network}.svg", "200"): 2,
        ("/bar.svg", "200"): 1,
        ("/widget", "200"): 1,
    }
    assert {route for route, _ in counted} <= BADGE_ROUTES
    assert metrics.value("flares_badge_cache_hits_total") == 1
    assert other.labels("flares_badge_requests_total") == []
    assert other.value("flares_badge_cache_hits_total") == 0


async def test_redis_down_is_503_in_plain_text(make_api: ApiFactory) -> None:
    async with make_api(redis_at=f"redis://127.0.0.1:{free_port()}/0") as (api, _):
        response = await api.get("/metrics")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["retry-after"] == "5"
    assert response.text == "Redis does not answer; no metrics\n"


async def test_a_badge_route_that_raises_counts_as_500() -> None:
    badge_metrics = BadgeMetrics()

    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = Starlette(
        routes=[Route("/bar.svg", broken)],
        middleware=[Middleware(CountBadgeRequests, metrics=badge_metrics)],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://flares") as api:
        response = await api.get("/bar.svg")
    assert response.status_code == 500
    labels = {"route": "/bar.svg", "status": "500"}
    assert badge_metrics.registry.get_sample_value("flares_badge_requests_total", labels) == 1
