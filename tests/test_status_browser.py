"""/status in headless Chromium, with JavaScript off: a network fails and recovers, on a
desktop and on a phone; the screenshots are kept under $FLARES_ARTIFACTS (test-artifacts/)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize

from aggregator.health import State
from aggregator.status import LOOKS
from tests.browser import artifacts_dir, browser, chromium
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import Service
from tests.test_e2e import PAGE, service_env
from tests.test_status import channels

__all__ = ["browser", "chromium"]

ADMIN_KEY = "status-k3y"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.set_count("hackernews", PAGE, 110)
        fake.set_count("hatena", PAGE, 141)
        yield fake


@pytest.fixture(scope="module")
def flares(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server tracking PAGE that polls it every half second."""
    tmp = tmp_path_factory.mktemp("status")
    env = {
        **service_env(upstream, tmp / "data"),
        "FLARES_ADMIN_KEY": ADMIN_KEY,
        # One request per fetch, and no breaker: a failure shows as `failing` within a second.
        "FLARES_SCHEDULE__RETRIES": "0",
        "FLARES_HEALTH__BREAKER_AFTER": "1000",
        # After a few failures the hour's ratio needs four successes for each before it reads
        # `ok` rather than `degraded`: more than Hatena's 20 requests a minute would allow.
        "FLARES_PROVIDERS__HATENA__BUDGET_REQUESTS": "1000",
    }
    service = Service(env, tmp / "serve.log").start()
    try:
        tracked = httpx.post(service.base_url + "/api/v1/urls", json={"url": PAGE}, headers=AUTH)
        assert tracked.status_code == 201, tracked.text
        yield service
    finally:
        assert service.stop() == 0, service.output()


def rgb(color: str) -> str:
    """A '#rrggbb' colour as getComputedStyle writes it."""
    return "rgb({}, {}, {})".format(*channels(color))


@dataclass(frozen=True)
class Row:
    """A provider's row as the browser shows it."""

    state: str
    background: str
    color: str
    text: str


async def row_of(page: Page, name: str) -> Row:
    shown = await page.evaluate(
        """name => {
            const row = document.getElementById('provider-' + name);
            const badge = getComputedStyle(row.querySelector('.badge'));
            return [row.dataset.state, badge.backgroundColor, badge.color, row.innerText];
        }""",
        name,
    )
    return Row(*shown)


async def until_state(page: Page, flares: Service, name: str, state: State) -> Row:
    """Reload /status, pushing PAGE to the front of the queue each time, until `name` is in
    `state`; fail after 30 s."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=flares.base_url, headers=AUTH, timeout=5) as api:
        while True:
            refreshed = await api.post("/api/v1/refresh", json={"url": PAGE})
            assert refreshed.status_code == 200, refreshed.text
            await page.goto(flares.base_url + "/status")
            row = await row_of(page, name)
            if row.state == state:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} still {row.state}, never {state}:\n{row.text}")
            await asyncio.sleep(0.2)


def assert_drawn_as(row: Row, state: State) -> None:
    look = LOOKS[state]
    assert (row.background, row.color) == (rgb(look.background), rgb(look.text)), row


async def new_context(browser: Browser, viewport: ViewportSize) -> BrowserContext:
    # No JavaScript: the page must work without it (its CSP forbids scripts anyway).
    context = await browser.new_context(viewport=viewport, java_script_enabled=False)
    context.set_default_timeout(10_000)
    return context


async def test_failing_provider_turns_red_and_recovers(
    browser: Browser, flares: Service, upstream: FakeUpstream
) -> None:
    context = await new_context(browser, DESKTOP)
    try:
        page = await context.new_page()
        assert_drawn_as(await until_state(page, flares, "hatena", "ok"), "ok")

        upstream.set_fault("hatena", Fault("status", status=503))
        failing = await until_state(page, flares, "hatena", "failing")
        assert_drawn_as(failing, "failing")
        assert "HTTP 503" in failing.text, failing.text
        assert (await row_of(page, "hackernews")).state == "ok"
        await page.screenshot(path=artifacts_dir() / "status-failing.png", full_page=True)

        upstream.set_fault("hatena", None)
        assert_drawn_as(await until_state(page, flares, "hatena", "ok"), "ok")
        await page.screenshot(path=artifacts_dir() / "status-recovered.png", full_page=True)
    finally:
        await context.close()


async def test_phone_gets_cards_and_no_sideways_scroll(browser: Browser, flares: Service) -> None:
    context = await new_context(browser, PHONE)
    try:
        page = await context.new_page()
        await page.goto(flares.base_url + "/status")
        layout = await page.evaluate(
            """() => [
                document.documentElement.scrollWidth,
                innerWidth,
                getComputedStyle(document.querySelector('thead')).display,
                getComputedStyle(document.querySelector('tbody tr')).display,
            ]"""
        )
        shot = artifacts_dir() / "status-phone.png"
        await page.screenshot(path=shot, full_page=True)
    finally:
        await context.close()
    scroll_width, inner_width, header, row = layout
    assert scroll_width <= inner_width == PHONE["width"], layout
    assert (header, row) == ("none", "block"), "rows become cards"
    png = await asyncio.to_thread(shot.read_bytes)
    assert int.from_bytes(png[16:20], "big") == PHONE["width"]


async def test_page_loads_nothing_else_and_breaks_no_policy(
    browser: Browser, flares: Service
) -> None:
    context = await new_context(browser, DESKTOP)
    requests: list[str] = []
    console: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    try:
        page = await context.new_page()
        page.on("console", lambda message: console.append(message.text))
        await page.goto(flares.base_url + "/status")
        styled = await page.evaluate(
            "getComputedStyle(document.querySelector('.badge')).borderRadius"
        )
    finally:
        await context.close()
    assert requests == [flares.base_url + "/status"]
    assert console == [], "a Content-Security-Policy violation is logged to the console"
    assert styled == "10px", "the inline stylesheet applies under the CSP"
