"""Share links over ASGI against a real Redis: the redirect, counting one click per visitor a
day, bots, refusals, privacy of what is stored, and where each served number comes from."""

from __future__ import annotations

import time
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.client import NEVER_DECODE
from starlette.requests import Request

from aggregator.api import share
from aggregator.api.limits import client_address
from aggregator.config import Settings
from aggregator.runtime import Runtime
from aggregator.sources import EMAIL, default_source
from aggregator.store import Store
from providers.registry import discover
from tests.test_api import PAGE, ApiFactory, assert_error, make_api

__all__ = ["make_api"]

TITLE = "Hello <world> & friends?"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
SHAREABLE = sorted(name for name, cls in discover().items() if cls.share_url)
# Behind one trusted proxy, X-Forwarded-For names the visitor.
PROXIED: dict[str, Any] = {"trusted_proxies": 1, "allowed_domains": "example.com"}


def visitor(address: str = "198.51.100.7", agent: str = BROWSER) -> dict[str, str]:
    return {"X-Forwarded-For": address, "User-Agent": agent}


async def click(
    api: httpx.AsyncClient, network: str, headers: dict[str, str], url: str = PAGE
) -> httpx.Response:
    response = await api.get(f"/share/{network}", params={"url": url}, headers=headers)
    assert response.status_code == 302, response.text
    return response


async def clicks(runtime: Runtime, network: str, url: str = PAGE) -> int:
    record = await runtime.store.get(url)
    assert record is not None
    net = record.networks.get(network)
    return net.clicks if net else 0


async def test_every_share_page_and_email(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        responses = {
            name: await api.get(
                f"/share/{name}", params={"url": PAGE, "title": TITLE}, headers=visitor()
            )
            for name in [*SHAREABLE, EMAIL]
        }
    assert len(SHAREABLE) >= 12
    providers = discover()
    for name, response in responses.items():
        assert response.status_code == 302, (name, response.text)
        expected = (
            f"mailto:?subject={quote(TITLE, safe='')}&body={quote(PAGE, safe='')}"
            if name == EMAIL
            else providers[name].share_link(PAGE, TITLE)
        )
        assert response.headers["location"] == expected, name
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "Hello%20%3Cworld%3E%20%26%20friends%3F" in responses["hackernews"].headers["location"]


async def test_the_page_in_the_redirect_is_the_canonical_one(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        response = await click(api, "facebook", visitor(), url="HTTPS://Blog.Example.com/post#x")
    assert response.headers["location"] == discover()["facebook"].share_link(PAGE)


async def test_one_visitor_counts_once_a_day(
    make_api: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = time.time()
    monkeypatch.setattr(share, "clock", lambda: today)
    async with make_api(**PROXIED) as (api, runtime):
        for _ in range(3):
            await click(api, "hackernews", visitor())
        assert await clicks(runtime, "hackernews") == 1
        await click(api, "hackernews", visitor("198.51.100.8"))
        await click(api, "hackernews", visitor(agent=BROWSER + " Firefox"))
        assert await clicks(runtime, "hackernews") == 3
        # The same visitor on another network of the page, and on the next day, counts again.
        await click(api, "reddit", visitor())
        monkeypatch.setattr(share, "clock", lambda: today + 86_400)
        await click(api, "hackernews", visitor())
        await click(api, "hackernews", visitor())
        assert await clicks(runtime, "hackernews") == 4
        assert await clicks(runtime, "reddit") == 1


async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, runtime):
        await click(api, "hackernews", visitor("198.51.100.7"))
        await click(api, "hackernews", visitor("198.51.100.8"))
        assert await clicks(runtime, "hackernews") == 1


def test_client_address_takes_the_entry_of_the_outermost_trusted_proxy() -> None:
    def address(forwarded: str | None, trusted: int) -> str:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
        scope = {"type": "http", "headers": headers, "client": ("10.0.0.2", 4711)}
        return client_address(Request(scope), trusted)

    # What the client sent itself stands left of what the proxies added.
    assert address("6.6.6.6, 198.51.100.7, 10.0.0.1", 2) == "198.51.100.7"
    assert address("6.6.6.6, 198.51.100.7", 1) == "198.51.100.7"
    assert address("6.6.6.6, 198.51.100.7", 0) == "10.0.0.2"
    assert address(None, 1) == "10.0.0.2"
    assert address("198.51.100.7", 2) == "10.0.0.2"


@pytest.mark.parametrize(
    ("agent", "person"),
    [
        (BROWSER, True),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Version/17.5 Safari/604.1", True),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", True),
        ("Mozilla/5.0 (Linux; Android 10; CUBOT X30) Chrome/126.0 Mobile Safari/537.36", True),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", False),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", False),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", False),
        ("Twitterbot/1.0", False),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", False),
        ("Mozilla/5.0 (compatible; Yahoo! Slurp)", False),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0", False),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", False),
        ("curl/8.5.0", False),
        ("Wget/1.21.4", False),
        ("python-requests/2.32.3", False),
        ("python-httpx/0.27.0", False),
        ("", False),
        ("   ", False),
        (None, False),
    ],
)
def test_bots_by_their_user_agent(agent: str | None, person: bool) -> None:
    assert share.counts_as_person(agent) is person


async def test_bots_and_no_user_agent_are_redirected_not_counted(make_api: ApiFactory) -> None:
    async with make_api(**PROXIED) as (api, runtime):
        await click(api, "hackernews", visitor(agent="Mozilla/5.0 (compatible; Googlebot/2.1)"))
        await click(api, "hackernews", visitor(agent=""))
        # httpx's own User-Agent names a library.
        await click(api, "hackernews", {})
        assert await clicks(runtime, "hackernews") == 0


@pytest.mark.parametrize(
    ("allowed", "url", "status", "error"),
    [
        ("example.com", "https://evil.example/", 404, "not tracked"),
        ("example.com", "https://evil.example/?to=https://blog.example.com/", 404, "not tracked"),
        ("", PAGE, 404, "not tracked"),
        ("example.com", "javascript:alert(1)", 400, "invalid url"),
        ("example.com", "//evil.example/", 400, "invalid url"),
    ],
)
async def test_pages_not_tracked_are_refused_without_a_redirect(
    make_api: ApiFactory, redis: Redis, allowed: str, url: str, status: int, error: str
) -> None:
    async with make_api(allowed_domains=allowed) as (api, _):
        response = await api.get("/share/hackernews", params={"url": url}, headers=visitor())
        missing = await api.get("/share/hackernews", headers=visitor())
    assert_error(response, status, error)
    assert "location" not in response.headers
    assert_error(missing, 400, "invalid request")
    assert await redis.keys("flares:v:*") == []


async def test_a_tracked_page_off_the_allow_list_is_shared(make_api: ApiFactory) -> None:
    other = "https://other.test/post"
    async with make_api(allowed_domains="example.com") as (api, runtime):
        await runtime.store.track(other, time.time())
        response = await click(api, "hackernews", visitor(), url=other)
    assert response.headers["location"] == discover()["hackernews"].share_link(other)


@pytest.mark.parametrize("network", ["nosuch", "googleplus", "HackerNews", "email%00"])
async def test_a_network_without_a_share_page_is_404(make_api: ApiFactory, network: str) -> None:
    async with make_api(allowed_domains="example.com") as (api, runtime):
        response = await api.get(f"/share/{network}", params={"url": PAGE}, headers=visitor())
        record = await runtime.store.get(PAGE)
    assert_error(response, 404, "unknown network")
    assert "location" not in response.headers
    assert record is not None
    assert all(net.clicks == 0 for net in record.networks.values())


async def dumps(redis: Redis) -> bytes:
    """Every key and its serialized value, as one blob to search."""
    blob = b""
    for key in cast(list[str], await redis.keys("*")):
        raw = await redis.execute_command("DUMP", key, **{NEVER_DECODE: True})  # type: ignore[no-untyped-call]
        blob += key.encode() + b"\n" + raw + b"\n"
    return blob


@pytest.mark.parametrize("salt", [None, "configured-salt-0123456789"])
async def test_no_address_nor_user_agent_is_stored(
    make_api: ApiFactory, redis: Redis, salt: str | None
) -> None:
    address, agent = "203.0.113.77", "Mozilla/5.0 UniqueAgent/9.9"
    async with make_api(**PROXIED, share_salt=salt) as (api, runtime):
        await click(api, "hackernews", visitor(address, agent))
        await click(api, EMAIL, visitor(address, agent))
        assert await clicks(runtime, "hackernews") == 1
        assert await clicks(runtime, EMAIL) == 1
    stored = await dumps(redis)
    for secret in (address, agent, "UniqueAgent", address.replace(".", "")):
        assert secret.encode() not in stored
    salts = await redis.keys("flares:salt:*")
    if salt is None:
        # A random salt of the day, which goes with the day's visitors.
        assert len(salts) == 1
        assert 0 < await redis.ttl(salts[0]) <= 2 * 86_400
    else:
        assert salts == []
        assert salt.encode() not in stored
    visitors = await redis.keys("flares:v:*")
    assert len(visitors) == 2
    for key in visitors:
        assert 0 < await redis.ttl(key) <= 2 * 86_400


async def test_the_salt_is_one_for_all_processes(make_api: ApiFactory) -> None:
    async with make_api(**PROXIED) as (api, runtime), make_api(**PROXIED) as (other, _):
        await click(api, "hackernews", visitor())
        await click(other, "hackernews", visitor())
        assert await clicks(runtime, "hackernews") == 1


async def test_clicks_outlive_fetches_failures_and_refreshes(store: Store, redis: Redis) -> None:
    now, day = time.time(), 20_000
    assert await store.count_click(PAGE, "hackernews", "a" * 32, day) is False
    assert await redis.keys("flares:v:*") == []
    await store.track(PAGE, now)
    assert await store.count_click(PAGE, "hackernews", "a" * 32, day) is True
    await store.merge_counts("hackernews", {PAGE: 5}, now)
    await store.mark_failed("hackernews", [PAGE], now)
    await store.refresh([PAGE], now)
    assert await store.count_click(PAGE, "hackernews", "a" * 32, day) is False
    assert await store.count_click(PAGE, "hackernews", "b" * 32, day) is True
    await store.merge_counts("hackernews", {PAGE: 7}, now)
    record = await store.get(PAGE)
    assert record is not None
    net = record.networks["hackernews"]
    assert (net.count, net.clicks) == (7, 2)
    # The store's own total stays the networks' sum; sources apply where numbers are served.
    assert record.total == 7


async def seed(runtime: Runtime, counts: dict[str, int]) -> None:
    """Track PAGE and store its networks' API counts, as a poller would."""
    now = time.time()
    await runtime.store.track(PAGE, now)
    for network, count in counts.items():
        await runtime.store.merge_counts(network, {PAGE: count}, now)


async def counts_of(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/api/v1/counts", params={"url": PAGE})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_each_number_follows_its_source(make_api: ApiFactory) -> None:
    sources = {"hatena": {"source": "max"}, "reddit": {"source": "max"}}
    async with make_api(**PROXIED, providers=sources) as (api, runtime):
        await seed(runtime, {"hackernews": 10, "hatena": 1, "reddit": 50, "linkedin": 83})
        for address in ("198.51.100.1", "198.51.100.2"):
            for network in ("hackernews", "hatena", "reddit", "linkedin", EMAIL):
                await click(api, network, visitor(address))
        body = await counts_of(api)
        badge = await api.get("/badge.svg", params={"url": PAGE, "network": "linkedin"})
        total = await api.get("/badge.svg", params={"url": PAGE, "format": "full"})
        histories = {
            network: await api.get("/api/v1/history", params={"url": PAGE, "network": network})
            for network in ("hackernews", "hatena", "reddit", "linkedin", EMAIL, "total")
        }
    # Each history ends at the number shown, whatever the clicks and counts the store holds.
    ends = {name: r.json()["daily"][-1]["count"] for name, r in histories.items()}
    assert ends == {
        "hackernews": 10,
        "hatena": 2,
        "reddit": 50,
        "linkedin": 2,
        EMAIL: 2,
        "total": 10 + 2 + 50 + 2 + 2,
    }
    networks = body["networks"]
    shown = {name: (n["count"], n["source"], n["clicks"]) for name, n in networks.items()}
    assert shown == {
        # api: the network's count, whatever the clicks.
        "hackernews": (10, "api", 2),
        # max: the larger of the two.
        "hatena": (2, "max", 2),
        "reddit": (50, "max", 2),
        # clicks by default for LinkedIn (its counter is gone) and e-mail (it has none).
        "linkedin": (2, "clicks", 2),
        EMAIL: (2, "clicks", 2),
    }
    assert networks[EMAIL]["state"] == "ok"
    assert body["total"] == 10 + 2 + 50 + 2 + 2
    assert "<title>linkedin: 2</title>" in badge.text
    assert f"<title>flares: {body['total']}</title>" in total.text


async def test_clicks_alone_make_a_page_counted(make_api: ApiFactory) -> None:
    async with make_api(**PROXIED) as (api, _):
        pending = await api.get("/api/v1/counts", params={"url": PAGE})
        await click(api, EMAIL, visitor())
        body = await counts_of(api)
        bar = await api.get("/bar.svg", params={"url": PAGE})
    assert pending.status_code == 202
    assert body["state"] == "ok"
    assert body["total"] == 1
    assert body["networks"]["hackernews"]["count"] is None
    assert "1 Flares" in bar.text


def settings_with(**providers: dict[str, Any]) -> Settings:
    return Settings(providers=providers)


def test_default_sources() -> None:
    found = discover()

    def default(name: str, config: Settings) -> str:
        return default_source(found[name], config)

    bare = Settings()
    assert {name: default(name, bare) for name in found} == {
        name: "clicks" if name in ("twitter", "linkedin", "buffer") else "api" for name in found
    }
    assert default("twitter", settings_with(twitter={"bearer_token": "t"})) == "api"
    assert default("twitter", settings_with(twitter={"mode": "legacy"})) == "api"
    assert default("facebook", settings_with(facebook={"app_id": "a", "app_secret": "s"})) == "api"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    network=st.sampled_from(["hackernews", EMAIL, "nosuch", "googleplus"]) | st.text(max_size=20),
    raw=st.text(max_size=120),
)
async def test_no_query_makes_a_500(make_api: ApiFactory, network: str, raw: str) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        responses = [
            await api.get(f"/share/{quote(network, safe='')}?{quote(raw, safe='&=%+;')}"),
            await api.get(
                f"/share/{quote(network, safe='')}",
                params={"url": PAGE, "title": raw},
                headers={"User-Agent": BROWSER + "".join(c for c in raw if " " <= c <= "~")},
            ),
        ]
    for response in responses:
        assert response.status_code < 500, (network, raw, response.text)
        if response.status_code == 302:
            location = response.headers["location"]
            assert location.startswith(("https://", "mailto:?")), location
