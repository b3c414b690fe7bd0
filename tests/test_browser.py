"""Badges, bar and widget in headless Chromium, embedded by a page on another origin.

One `flares serve` with a fake upstream and one browser serve the module; the page with every
embed is loaded once, checked, and kept as a PNG under $FLARES_ARTIFACTS (test-artifacts/).
"""

from __future__ import annotations

import asyncio
import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route

from aggregator.badges import STYLES, metric
from providers.registry import discover
from tests.browser import artifacts_dir, browser, chromium
from tests.fakeupstream import FakeUpstream
from tests.service import Service, wait_for
from tests.test_e2e import AUTH, PAGE, service_env

__all__ = ["browser", "chromium"]

COUNTS = {"hackernews": 110, "hatena": 141}
TITLE = "Hello <world> & friends"
UNTRACKED = "https://elsewhere.example.org/post"
LOCAL_HOST = "127.0.0.1"
SCREENSHOT = "embeds.png"
VISITOR_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def flares(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server whose tracked PAGE has its first counts in."""
    tmp = tmp_path_factory.mktemp("browser")
    with FakeUpstream() as fake:
        for network, count in COUNTS.items():
            fake.set_count(network, PAGE, count)
        service = Service(service_env(fake, tmp / "data"), tmp / "serve.log").start()
        try:
            post = service.base_url + "/api/v1/urls"
            tracked = httpx.post(post, json={"url": PAGE}, headers=AUTH)
            assert tracked.status_code == 201, tracked.text
            wait_for(
                lambda: (
                    service.get("/api/v1/counts", url=PAGE).json()["total"] == sum(COUNTS.values())
                    or None
                ),
                "the first counts",
            )
            yield service
        finally:
            assert service.stop() == 0, service.output()


def embed_url(flares: Service, path: str, **params: str) -> str:
    return f"{flares.base_url}{path}?{urlencode(params)}"


def images(flares: Service) -> dict[str, str]:
    """Element id -> image URL: a badge of every registered style, and the bar."""
    found = {
        f"badge-{style}": embed_url(flares, "/badge.svg", url=PAGE, style=style) for style in STYLES
    }
    found["bar"] = embed_url(flares, "/bar.svg", url=PAGE)
    return found


def publisher_html(flares: Service) -> str:
    """A publisher's page: every badge and the bar as <img>, two widgets through embed.js."""
    imgs = "\n".join(
        f'<p>{escape(name)}</p><img id="{escape(name)}" src="{escape(src)}" alt="{escape(name)}">'
        for name, src in images(flares).items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A publisher's page</title>
<style>body {{ font-family: sans-serif; margin: 16px; width: 720px; }}
img {{ display: block; }} p {{ margin: 10px 0 2px; color: #666; font-size: 12px; }}</style>
</head><body>
<h1>Every embed of one page</h1>
{imgs}
<p>widget</p>
<div id="widget" data-flares-url="{escape(PAGE)}" data-flares-title="{escape(TITLE)}"></div>
<p>widget of an untracked page</p>
<div id="untracked" data-flares-url="{escape(UNTRACKED)}"></div>
<script src="{escape(flares.base_url)}/embed.js" async></script>
</body></html>"""


@pytest.fixture(scope="module")
def publisher(flares: Service) -> Iterator[str]:
    """The publisher's page on its own origin (another port), so every embed is cross-origin."""
    body = publisher_html(flares).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests report what matters."""

    server = ThreadingHTTPServer((LOCAL_HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def screenshot() -> Path:
    """Where the page's PNG goes; the folder exists."""
    return artifacts_dir() / SCREENSHOT


@dataclass
class Loaded:
    """The publisher's page after every image and widget has rendered."""

    context: BrowserContext
    page: Page
    requests: list[str]


async def open_publisher(context: BrowserContext, publisher: str) -> Loaded:
    # Fail in seconds, not Playwright's default 30 s, when something never shows.
    context.set_default_timeout(10_000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = await context.new_page()
    await page.goto(publisher)
    await page.wait_for_function("[...document.images].every(img => img.complete)")
    for element in ("#widget", "#untracked"):
        # The frame has reported its height once the inline style is no longer the initial one.
        await page.wait_for_function(
            f"document.querySelector('{element} iframe')?.style.height.endsWith('px')"
        )
    return Loaded(context, page, requests)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(browser: Browser, publisher: str, screenshot: Path) -> AsyncIterator[Loaded]:
    context = await browser.new_context(viewport={"width": 800, "height": 600})
    try:
        loaded = await open_publisher(context, publisher)
        await loaded.page.screenshot(path=screenshot, full_page=True)
        yield loaded
    finally:
        await context.close()


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)


@pytest.mark.parametrize("element", [*(f"badge-{style}" for style in STYLES), "bar"])
async def test_image_renders_at_its_computed_size(
    loaded: Loaded, flares: Service, element: str
) -> None:
    response = await get(images(flares)[element])
    assert response.status_code == 200, (element, response.status_code, response.text)
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.text)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    shown = await loaded.page.evaluate(
        """id => {
            const img = document.getElementById(id), box = img.getBoundingClientRect();
            return [img.naturalWidth, img.naturalHeight, box.width, box.height];
        }""",
        element,
    )
    # Natural sizes are whole pixels (rounded half up); layout keeps 1/64 px.
    assert shown[:2] == [math.floor(width + 0.5), math.floor(height + 0.5)], element
    assert shown[2] == pytest.approx(width, abs=1 / 64), element
    assert shown[3] == pytest.approx(height, abs=1 / 64), element


async def widget_text(page: Page, element: str) -> str:
    frame = page.frame_locator(f"#{element} iframe")
    return " ".join((await frame.locator("body").inner_text()).split())


async def test_widget_shows_the_counts_the_api_serves(loaded: Loaded, flares: Service) -> None:
    body: dict[str, Any] = (await get(embed_url(flares, "/api/v1/counts", url=PAGE))).json()
    text = await widget_text(loaded.page, "widget")
    assert text.startswith(f"{metric(body['total'])} Flares "), text
    providers = discover()
    for name, network in body["networks"].items():
        assert network["count"] == COUNTS.get(name), name
        assert f"{providers[name].label} {metric(network['count'])}" in text, text


async def test_widget_buttons_link_through_flares(loaded: Loaded, flares: Service) -> None:
    frame = loaded.page.frame_locator("#widget iframe")
    links = await frame.locator("a").evaluate_all(
        "links => links.map(a => [a.textContent, a.getAttribute('href'), a.target, a.rel])"
    )
    providers = discover()
    query = urlencode({"url": PAGE, "title": TITLE})
    expected = [
        [f"{providers[name].label} {count}", f"{flares.base_url}/share/{name}?{query}"]
        for name, count in sorted(COUNTS.items())
    ]
    assert [link[:2] for link in links] == expected
    assert {(link[2], link[3]) for link in links} == {("_blank", "noopener noreferrer")}


async def test_widget_frame_is_as_tall_as_its_bar(loaded: Loaded) -> None:
    heights = await loaded.page.evaluate(
        "[...document.querySelectorAll('[data-flares-url] iframe')].map(f => f.clientHeight)"
    )
    inner = [
        await loaded.page.frame_locator(f"#{element} iframe")
        .locator("html")
        .evaluate("html => Math.ceil(html.getBoundingClientRect().height)")
        for element in ("widget", "untracked")
    ]
    assert heights == inner
    assert all(height > 10 for height in heights)


async def test_untracked_page_gets_a_message(loaded: Loaded) -> None:
    text = await widget_text(loaded.page, "untracked")
    assert text == "No share counts for this page: not tracked."


async def test_no_cookies_and_no_request_beyond_loopback(loaded: Loaded) -> None:
    assert await loaded.context.cookies() == []
    hosts = {urlsplit(url).hostname for url in loaded.requests}
    assert hosts == {LOCAL_HOST}, loaded.requests
    # The page itself, embed.js, two widgets, every badge and the bar: nothing else was fetched.
    assert len(loaded.requests) == 1 + 1 + 2 + len(STYLES) + 1, loaded.requests


async def test_screenshot_is_kept_as_an_artifact(loaded: Loaded, screenshot: Path) -> None:
    png = await asyncio.to_thread(screenshot.read_bytes)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    viewport = loaded.page.viewport_size
    assert viewport is not None
    # A full-page shot: as wide as the viewport, as tall as the whole page.
    page_height = await loaded.page.evaluate("document.documentElement.scrollHeight")
    assert int.from_bytes(png[16:20], "big") == viewport["width"]
    assert int.from_bytes(png[20:24], "big") == page_height


async def test_share_button_is_counted_once_and_redirects_to_the_share_page(
    browser: Browser, publisher: str, flares: Service
) -> None:
    # A person's browser: headless Chromium names itself in its User-Agent, and bots count not.
    context = await browser.new_context(user_agent=VISITOR_AGENT)
    third_party: list[str] = []
    answers: list[tuple[dict[str, str], int, dict[str, str]]] = []

    async def elsewhere(route: Route) -> None:
        third_party.append(route.request.url)
        await route.abort()

    async def through_flares(route: Route) -> None:
        # Chromium follows a server's redirect past every route (out to the network), so take
        # flares' answer here and stand in for the share page it leads to.
        response = await route.fetch(max_redirects=0)
        answers.append((route.request.headers, response.status, response.headers))
        await route.fulfill(status=200, content_type="text/html", body="<title>shared</title>")

    query = urlencode({"url": PAGE, "title": TITLE})
    try:
        await context.route(lambda url: urlsplit(url).hostname != LOCAL_HOST, elsewhere)
        await context.route(lambda url: urlsplit(url).path.startswith("/share/"), through_flares)
        loaded = await open_publisher(context, publisher)
        frame = loaded.page.frame_locator("#widget iframe")
        for _ in range(2):
            async with context.expect_page() as opened:
                await frame.get_by_role("link", name="Hacker News").click()
            popup = await opened.value
            await popup.wait_for_load_state()
            assert popup.url == f"{flares.base_url}/share/hackernews?{query}"
        assert await context.cookies() == []
    finally:
        await context.close()
    assert third_party == []
    assert len(answers) == 2
    for sent, status, headers in answers:
        assert "referer" not in sent
        assert status == 302
        assert headers["location"] == discover()["hackernews"].share_link(PAGE, TITLE)
        # The share page learns nothing of the page the click came from.
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
    counts = (await get(embed_url(flares, "/api/v1/counts", url=PAGE))).json()
    # One visitor clicked twice today: one share; Hacker News still serves its own count.
    assert counts["networks"]["hackernews"]["clicks"] == 1
    assert counts["networks"]["hackernews"]["count"] == COUNTS["hackernews"]
