"""The share widget in-process: /embed.js and /widget, their headers, escaping and errors."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import ClassVar
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.widget import NO_COUNT, asset
from providers.hackernews import HackerNews
from tests.fakeupstream import FakeUpstream
from tests.service import free_port
from tests.test_api import PAGE, ApiFactory, make_api

__all__ = ["make_api"]

SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
LINK = re.compile(r'<a class="net" href="([^"]*)"')


def text_of(html: str) -> str:
    """The visible words of the page, tags dropped and whitespace collapsed."""
    body = html.split("<body>", 1)[1]
    return " ".join(re.sub(r"<script>.*?</script>|<[^>]+>", " ", body, flags=re.DOTALL).split())


def assert_widget_headers(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in response.headers
    csp = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["style-src"] == "'unsafe-inline'"
    assert (csp["base-uri"], csp["form-action"]) == ("'none'", "'none'")
    # The one inline script runs because its hash is allowed, and nothing else may.
    (script,) = SCRIPT.findall(response.text)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert csp["script-src"] == f"'sha256-{digest}'"
    assert "http" not in response.headers["content-security-policy"]


async def test_embed_js_is_the_static_script_with_a_long_cache(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        response = await api.get("/embed.js")
        again = await api.get("/embed.js", headers={"If-None-Match": response.headers["etag"]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "set-cookie" not in response.headers
    assert response.text == asset("embed.js")
    assert "[data-flares-url]" in response.text
    assert (again.status_code, again.content) == (304, b"")


async def test_widget_shows_total_then_each_network(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_count("hackernews", PAGE, 1100)
    fake_upstream.set_count("hatena", PAGE, 141)
    async with make_api() as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        await runtime.poller.tick()
        response = await api.get("/widget", params={"url": PAGE, "title": "Hello"})
        again = await api.get(
            "/widget",
            params={"url": PAGE, "title": "Hello"},
            headers={"If-None-Match": response.headers["etag"]},
        )
    assert_widget_headers(response)
    assert response.headers["cache-control"] == "public, max-age=300"
    assert again.status_code == 304
    assert text_of(response.text) == "1.2k Flares Hacker News 1.1k Hatena Bookmark 141"
    # Through flares, which counts the click and redirects to the network's share page.
    links = [link.replace("&amp;", "&") for link in LINK.findall(response.text)]
    query = urlencode({"url": PAGE, "title": "Hello"})
    assert links == [f"http://flares/share/{name}?{query}" for name in ("hackernews", "hatena")]
    assert response.text.count('target="_blank" rel="noopener noreferrer"') == 2
    assert 'style="background:#ff6600;color:#fff"' in response.text
    assert 'title="Share on Hacker News (1100 shares)"' in response.text


async def test_pending_page_shows_no_numbers_yet(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        await api.post("/api/v1/urls", json={"url": PAGE})
        response = await api.get("/widget", params={"url": PAGE})
    assert_widget_headers(response)
    assert response.headers["cache-control"] == "public, max-age=30"
    assert (
        text_of(response.text).replace(NO_COUNT, "-") == "- Flares Hacker News - Hatena Bookmark -"
    )


async def test_networks_choose_and_order_the_buttons(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        await api.post("/api/v1/urls", json={"url": PAGE})
        response = await api.get(
            "/widget",
            params={"url": PAGE, "networks": "reddit, nosuch,googleplus,hackernews,reddit"},
        )
    assert_widget_headers(response)
    # A disabled network still gets its button; one without a share page shows its count only.
    shown = text_of(response.text).replace(NO_COUNT, "-")
    assert shown == "- Flares Reddit - Google+ - Hacker News -"
    assert len(LINK.findall(response.text)) == 2
    assert '<span class="net" style="background:#db4437;color:#fff"' in response.text


class Hostile(HackerNews):
    """A plugin whose declared data tries to break out of the page."""

    name: ClassVar[str] = "hostile"
    label: ClassVar[str] = '<img src=x onerror="alert(1)">'
    color: ClassVar[str] = "red;background:url(https://evil.example/)"
    share_url: ClassVar[str | None] = "javascript:alert('{url}')"


async def test_everything_is_escaped(make_api: ApiFactory) -> None:
    page = "https://blog.example.com/a?q=</title><script>alert(1)</script>&x=\"'"
    title = '"><script>alert(2)</script>'
    async with make_api() as (api, runtime):
        runtime.providers["hostile"] = Hostile
        await api.post("/api/v1/urls", json={"url": page})
        response = await api.get(
            "/widget", params={"url": page, "title": title, "networks": "hostile,hackernews"}
        )
    assert_widget_headers(response)
    html = response.text
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    # The colour falls back, the javascript: link is dropped, the title is URL-encoded.
    assert "evil.example" not in html
    assert "javascript:" not in html
    assert "%22%3E%3Cscript%3Ealert%282%29%3C%2Fscript%3E" in html
    assert len(LINK.findall(html)) == 1


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "missing url"),
        ({"url": ""}, "missing url"),
        ({"url": "javascript:alert(1)"}, "invalid url"),
        ({"url": "https://exa mple.com/"}, "invalid url"),
        ({"url": "https://" + "a" * 5000 + ".com/"}, "invalid url"),
        ({"url": "https://untracked.example.org/"}, "not tracked"),
    ],
)
async def test_bad_or_unknown_pages_get_a_message(
    make_api: ApiFactory, params: dict[str, str], reason: str
) -> None:
    async with make_api() as (api, _):
        response = await api.get("/widget", params=params)
    assert_widget_headers(response)
    assert response.headers["cache-control"] == "public, max-age=60"
    assert text_of(response.text) == f"No share counts for this page: {reason}."


async def test_redis_down_gets_a_message(make_api: ApiFactory) -> None:
    async with make_api(redis_at=f"redis://127.0.0.1:{free_port()}/0") as (api, _):
        response = await api.get("/widget", params={"url": PAGE})
    assert_widget_headers(response)
    assert text_of(response.text) == "No share counts for this page: unavailable."


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.text(max_size=200), title=st.text(max_size=50), networks=st.text(max_size=30))
async def test_no_input_makes_a_500(
    make_api: ApiFactory, raw: str, title: str, networks: str
) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        response = await api.get(
            "/widget", params={"url": raw, "title": title, "networks": networks}
        )
    assert response.status_code == 200, (raw, response.text)
