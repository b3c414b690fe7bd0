"""The HTTP API in-process over ASGI, against a real Redis; the scheduler is driven by hand."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from aggregator.api.app import create_app
from aggregator.runtime import Runtime
from aggregator.store import Store
from tests.conftest import SettingsFactory
from tests.fakeupstream import FakeUpstream, Fault

PAGE = "https://blog.example.com/post"
ApiFactory = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Runtime]]]


@pytest.fixture
def make_api(make_settings: SettingsFactory, redis_url: str, redis: Redis) -> ApiFactory:
    @asynccontextmanager
    async def make(
        redis_at: str | None = None, *, insecure_open: bool = True, **overrides: Any
    ) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
        """The app on the test Redis, or on `redis_at` (e.g. a port where nothing listens);
        writes open without a key, as `flares serve --insecure-open` has them, unless told not."""
        settings = make_settings(**overrides)
        url = redis_at or redis_url
        app = create_app(settings, url, scheduler=False, insecure_open=insecure_open)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://flares") as client:
                yield client, app.state.runtime

    return make


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    return body


async def test_track_then_already_tracked(make_api: ApiFactory, store: Store) -> None:
    async with make_api() as (api, _):
        first = await api.post("/api/v1/urls", json={"url": "HTTPS://Blog.Example.com/post#top"})
        again = await api.post("/api/v1/urls", json={"url": PAGE})
    assert first.status_code == 201
    assert first.json() == {"url": PAGE, "created": True}
    assert again.status_code == 200
    assert again.json() == {"url": PAGE, "created": False}
    assert await store.get(PAGE) is not None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/relative/path", "absolute"),
        ("ftp://example.com/file", "http"),
        ("javascript:alert(1)", "http"),
        ("https://user:pw@example.com/", "user name"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com:99999/", "parsed"),
        ("https://" + "a" * 2050 + ".com/", "2048"),
    ],
)
async def test_track_refuses_bad_urls(make_api: ApiFactory, url: str, reason: str) -> None:
    async with make_api() as (api, _):
        response = await api.post("/api/v1/urls", json={"url": url})
    body = assert_error(response, 400, "invalid url")
    assert reason in body["detail"]


async def test_malformed_bodies_are_400_json(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        missing = await api.post("/api/v1/urls", json={})
        not_json = await api.post(
            "/api/v1/urls", content=b"{nope", headers={"content-type": "application/json"}
        )
        wrong_type = await api.post("/api/v1/urls", json={"url": 42})
    for response in (missing, not_json, wrong_type):
        body = assert_error(response, 400, "invalid request")
        assert body["detail"], "the detail names the problem"


async def test_admin_key_guards_writes(make_api: ApiFactory) -> None:
    async with make_api(admin_key="s3cret") as (api, _):
        anonymous = await api.post("/api/v1/urls", json={"url": PAGE})
        wrong = await api.post(
            "/api/v1/urls", json={"url": PAGE}, headers={"Authorization": "Bearer nope"}
        )
        right = await api.post(
            "/api/v1/urls", json={"url": PAGE}, headers={"Authorization": "Bearer s3cret"}
        )
    assert_error(anonymous, 401, "admin key required")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert_error(wrong, 401, "admin key required")
    assert right.status_code == 201


async def test_domain_allow_list_on_writes(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        allowed = await api.post("/api/v1/urls", json={"url": PAGE})
        foreign = await api.post("/api/v1/urls", json={"url": "https://evil.test/x"})
        lookalike = await api.post("/api/v1/urls", json={"url": "https://notexample.com/x"})
    assert allowed.status_code == 201
    assert_error(foreign, 403, "domain not allowed")
    assert_error(lookalike, 403, "domain not allowed")


async def test_admin_tracks_any_domain(make_api: ApiFactory) -> None:
    auth = {"Authorization": "Bearer k"}
    async with make_api(allowed_domains="example.com", admin_key="k") as (api, _):
        response = await api.post("/api/v1/urls", json={"url": "https://other.test/"}, headers=auth)
    assert response.status_code == 201


async def test_counts_of_untracked_url_outside_allow_list_is_404(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        response = await api.get("/api/v1/counts", params={"url": "https://elsewhere.test/"})
    assert_error(response, 404, "not tracked")


async def test_first_read_on_allowed_domain_tracks_and_is_pending(
    make_api: ApiFactory, store: Store
) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        response = await api.get("/api/v1/counts", params={"url": PAGE})
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "pending"
    assert body["total"] == 0
    assert body["networks"]["hackernews"] == {
        "count": None,
        "source": "api",
        "clicks": 0,
        "fetched_at": None,
        "state": "pending",
        "parts": {},
    }
    assert await store.get(PAGE) is not None


async def test_counts_after_a_tick(make_api: ApiFactory, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_count("hackernews", PAGE, 12)
    fake_upstream.set_count("hatena", PAGE, 7)
    async with make_api() as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        assert await runtime.poller.tick() == 1
        response = await api.get("/api/v1/counts", params={"url": PAGE})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 19
    assert body["state"] == "ok"
    assert body["networks"]["hackernews"]["count"] == 12
    assert body["networks"]["hatena"]["count"] == 7
    assert body["networks"]["hatena"]["state"] == "ok"
    assert body["networks"]["hatena"]["fetched_at"] is not None
    assert body["updated_at"] is not None


async def test_failed_fetch_keeps_counts_and_marks_error(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_count("hatena", PAGE, 7)
    async with make_api() as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        await runtime.poller.tick()
        fake_upstream.set_fault("hatena", Fault("status", status=502))
        await runtime.store.refresh([PAGE], time.time())
        await runtime.poller.tick()
        response = await api.get("/api/v1/counts", params={"url": PAGE})
    body = response.json()
    assert body["networks"]["hatena"]["count"] == 7
    assert body["networks"]["hatena"]["state"] == "error"
    assert body["total"] == 7


async def test_providers_report_health(make_api: ApiFactory, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_fault("hatena", Fault("status", status=503))
    async with make_api() as (api, runtime):
        before = (await api.get("/api/v1/providers")).json()["providers"]
        await api.post("/api/v1/urls", json={"url": PAGE})
        for _ in range(2):
            await runtime.store.refresh([PAGE], time.time())
            await runtime.poller.tick()
        after = {p["name"]: p for p in (await api.get("/api/v1/providers")).json()["providers"]}
        one = await api.get("/api/v1/providers/hackernews")
        unknown = await api.get("/api/v1/providers/myspace")
    states = {p["name"]: p["state"] for p in before}
    assert (states.pop("hackernews"), states.pop("hatena")) == ("pending", "pending")
    assert (states.pop("googleplus"), states.pop("linkedin")) == ("retired", "retired")
    assert set(states.values()) == {"disabled"}
    assert after["hackernews"]["state"] == "ok"
    assert after["hackernews"]["status"] == "live"
    assert after["hackernews"]["urls_tracked"] == 1
    assert after["hatena"]["state"] == "failing"
    assert after["hatena"]["last_error"]["status"] == 503
    assert after["hatena"]["last_error"]["kind"] == "http"
    assert "503" in after["hatena"]["last_error"]["message"]
    hatena, hackernews = after["hatena"], after["hackernews"]
    assert (hatena["hour"]["failed"], hatena["hour"]["success_ratio"]) == (2, 0.0)
    assert hatena["budget"]["used"] == 2
    assert hatena["budget"]["left"] == hatena["budget"]["limit"] - 2
    assert (hackernews["hour"]["ok"], hackernews["hour"]["success_ratio"]) == (2, 1.0)
    assert 0 < hackernews["hour"]["latency_p50"] <= hackernews["hour"]["latency_p95"]
    assert hatena["since"] is not None and hackernews["since"] is not None
    assert hatena["suspect"] is None
    assert after["hatena"]["last_error_at"] is not None
    assert one.json()["name"] == "hackernews"
    assert_error(unknown, 404, "unknown provider")


async def test_disabled_provider_is_not_called(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    providers = {
        "hackernews": {"base_url": fake_upstream.base_url},
        "hatena": {"base_url": fake_upstream.base_url, "enabled": False},
    }
    async with make_api(providers=providers) as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        await runtime.poller.tick()
        states = {
            p["name"]: p["state"] for p in (await api.get("/api/v1/providers")).json()["providers"]
        }
        counts = (await api.get("/api/v1/counts", params={"url": PAGE})).json()
    assert states["hatena"] == "disabled"
    assert fake_upstream.calls("hatena") == []
    assert list(counts["networks"]) == ["hackernews"]


async def test_probes(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        live = await api.get("/healthz")
        not_ready = await api.get("/readyz")
        await runtime.poller.tick()
        ready = await api.get("/readyz")
    assert live.status_code == 200
    assert not_ready.status_code == 503
    assert not_ready.json() == {"redis": "ok", "scheduler": "no recent tick"}
    assert ready.status_code == 200
    assert ready.json() == {"redis": "ok", "scheduler": "ok"}


async def test_unknown_route_is_json_404(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        response = await api.get("/nope")
    assert_error(response, 404, "Not Found")


async def test_openapi_is_served(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        spec = (await api.get("/openapi.json")).json()
        docs = await api.get("/docs")
    assert {"/api/v1/counts", "/api/v1/urls", "/badge.svg", "/api/v1/providers"} <= set(
        spec["paths"]
    )
    assert docs.status_code == 200


async def test_an_empty_admin_key_is_no_key(make_api: ApiFactory) -> None:
    async with make_api(admin_key="", allowed_domains="example.com") as (api, runtime):
        response = await api.post(
            "/api/v1/urls",
            json={"url": "https://other.test/"},
            headers={"Authorization": "Bearer "},
        )
    assert runtime.settings.admin_key is None
    assert_error(response, 403, "domain not allowed")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=st.text(max_size=300) | st.from_regex(r"https?://[^/]{0,30}/.{0,40}", fullmatch=True))
async def test_no_input_makes_a_500(make_api: ApiFactory, raw: str) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        responses = [
            await api.get("/api/v1/counts", params={"url": raw}),
            await api.get("/badge.svg", params={"url": raw, "network": raw[:10]}),
            await api.post("/api/v1/urls", json={"url": raw}),
        ]
    for response in responses:
        assert response.status_code < 500, (raw, response.status_code, response.text)


async def test_refresh_needs_the_admin_key_and_one_target(make_api: ApiFactory) -> None:
    auth = {"Authorization": "Bearer k"}
    async with make_api(admin_key="k") as (api, _):
        anonymous = await api.post("/api/v1/refresh", json={"all": True})
        nothing = await api.post("/api/v1/refresh", json={}, headers=auth)
        two = await api.post("/api/v1/refresh", json={"url": PAGE, "all": True}, headers=auth)
        untracked = await api.post("/api/v1/refresh", json={"url": PAGE}, headers=auth)
    assert_error(anonymous, 401, "admin key required")
    for response in (nothing, two):
        body = assert_error(response, 400, "invalid request")
        assert "exactly one" in str(body["detail"])
    assert_error(untracked, 404, "not tracked")


async def test_refresh_a_page_a_domain_or_everything(make_api: ApiFactory, redis: Redis) -> None:
    blog, shop, other = PAGE, "https://shop.example.com/a", "https://other.test/b"
    async with make_api() as (api, runtime):
        for url in (blog, shop, other):
            await runtime.store.track(url, time.time())
        await runtime.store.reschedule(dict.fromkeys((blog, shop, other), time.time() + 5000))
        one = await api.post("/api/v1/refresh", json={"url": "HTTPS://blog.example.com/post"})
        domain = await api.post("/api/v1/refresh", json={"domain": "Example.com"})
        soon = time.time() + 60
        due: dict[str, float] = {}
        for url in (blog, shop, other):
            score = await runtime.store.due_at(url)
            assert score is not None, "still tracked"
            due[url] = score
        everything = await api.post("/api/v1/refresh", json={"all": True})
    assert one.json() == {"refreshed": 1}
    assert domain.json() == {"refreshed": 2}
    assert due[blog] < soon
    assert due[shop] < soon
    assert due[other] > soon, "another domain stays where it was"
    assert everything.json() == {"refreshed": 3}


async def test_providers_show_the_circuit_breaker(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_fault("hatena", Fault("status", status=503))
    health = {"breaker_after": 2, "breaker_cooldown": 60.0, "failing_after": 5}
    async with make_api(health=health) as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        closed = (await api.get("/api/v1/providers/hatena")).json()
        for _ in range(2):
            await runtime.store.refresh([PAGE], time.time())
            await runtime.poller.tick()
        opened = (await api.get("/api/v1/providers/hatena")).json()
    assert closed["breaker"] == {"state": "closed", "since": None, "next_probe": None}
    assert opened["state"] == "circuit-open"
    assert opened["breaker"]["state"] == "open"
    assert opened["breaker"]["since"] is not None
    assert opened["breaker"]["next_probe"] > opened["breaker"]["since"]
