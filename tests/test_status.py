"""/status in-process: one row per provider as /api/v1/providers has it, escaping, headers,
freshness, and a page rather than a 500 while Redis is away."""

from __future__ import annotations

import html
import re
import time
from typing import Any, get_args

from markupsafe import escape

from aggregator.api.status import STATUS_CSP, freshness_grace
from aggregator.gate import Pass, Report, limits_for
from aggregator.health import State
from aggregator.runtime import Runtime
from aggregator.status import LOOKS, REFRESH_SECONDS
from aggregator.store import Store
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import free_port
from tests.test_api import PAGE, ApiFactory, make_api

__all__ = ["make_api"]

ROW = re.compile(r'<tr id="provider-([^"]+)" data-state="([^"]+)">(.*?)</tr>', re.DOTALL)
HOSTILE = "<img src=x onerror=\"alert('x')\"> & <script>alert(1)</script>"


def text_of(markup: str) -> str:
    """The visible words, tags dropped and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def rows(page: str) -> dict[str, tuple[str, str]]:
    """Provider name -> (state, the row's HTML)."""
    return {name: (state, row) for name, state, row in ROW.findall(page)}


def overview(page: str, field: str) -> str:
    found = re.search(rf'<dd id="{field}">(.*?)</dd>', page, re.DOTALL)
    assert found, field
    return text_of(found.group(1))


async def fail_twice(runtime: Runtime, name: str, message: str) -> None:
    """Record two failed requests of `name`, as the executor does after a bad answer."""
    limits = limits_for(runtime.providers[name], runtime.settings)
    for _ in range(2):
        now = time.time()
        permit = await runtime.gate.enter(name, 1, limits, now)
        assert isinstance(permit, Pass)
        report = Report("failed", message, "http", 500, latency=0.05)
        await runtime.gate.leave(name, permit, report, limits, now)


async def test_every_provider_has_a_row_with_its_state_and_reason(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_fault("hatena", Fault("status", status=503))
    async with make_api() as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        for _ in range(2):
            await runtime.store.refresh([PAGE], time.time())
            await runtime.poller.tick()
        response = await api.get("/status")
        views: list[dict[str, Any]] = (await api.get("/api/v1/providers")).json()["providers"]
    assert response.status_code == 200, response.text
    shown = rows(response.text)
    assert list(shown) == [view["name"] for view in views]
    for view in views:
        state, row = shown[view["name"]]
        assert state == view["state"]
        assert f'<span class="badge state-{state}">{state}</span>' in row
        assert view["reason"] in text_of(row)
        assert view["label"] in text_of(row)
    assert shown["hatena"][0] == "failing"
    assert "HTTP 503 Service Unavailable http, status 503" in text_of(shown["hatena"][1])
    assert shown["hackernews"][0] == "ok"
    assert "100% ok 2 requests, 0 failed" in text_of(shown["hackernews"][1])
    assert "retired since 2019-04-02" in text_of(shown["googleplus"][1])
    assert overview(response.text, "tracked") == "1"


async def test_error_messages_are_escaped(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await fail_twice(runtime, "hatena", HOSTILE)
        response = await api.get("/status")
    state, row = rows(response.text)["hatena"]
    assert state == "failing"
    assert str(escape(HOSTILE)) in row
    assert HOSTILE in text_of(row)
    assert "<img" not in response.text
    assert "<script" not in response.text


async def test_headers_and_head_keep_it_self_contained_and_fresh(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        response = await api.get("/status")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == STATUS_CSP
    assert STATUS_CSP.startswith("default-src 'none'; style-src 'unsafe-inline';")
    assert "script" not in STATUS_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    # Nothing to load: no script, stylesheet, image or frame, inline or not.
    assert re.search(r"<(script|link|img|iframe|object)\b|\bsrc=", page) is None


def channels(color: str) -> tuple[int, int, int]:
    """Red, green and blue of a '#rrggbb' colour."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return red, green, blue


def contrast(one: str, other: str) -> float:
    """WCAG contrast ratio of two '#rrggbb' colours."""

    def luminance(color: str) -> float:
        linear = (c / 255 for c in channels(color))
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in linear)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def test_every_state_has_its_colour_in_the_legend(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        page = (await api.get("/status")).text
    assert set(LOOKS) == set(get_args(State))
    legend = page.split('<ul class="legend">', 1)[1]
    for state, look in LOOKS.items():
        assert contrast(look.background, look.text) >= 4.5, state
        assert f".state-{state} {{ background: {look.background}; color: {look.text}; }}" in page
        assert (
            f'<li><span class="badge state-{state}">{state}</span> {escape(look.meaning)}' in legend
        )


async def test_freshness_counts_urls_not_overdue_beyond_the_grace(
    make_api: ApiFactory, store: Store
) -> None:
    async with make_api() as (api, runtime):
        empty = await api.get("/status")
        grace = freshness_grace(runtime.settings)
        now = time.time()
        due = {
            "https://example.com/later": now + 100,
            "https://example.com/due": now - grace / 2,
            "https://example.com/at-grace": now - grace,
            "https://example.com/late": now - grace - 60,
        }
        await store.track_many(due, now)
        await store.reschedule(due)
        assert await store.freshness(now, grace) == (3, 4)
        page = (await api.get("/status")).text
    assert (
        overview(empty.text, "freshness")
        == "\N{EM DASH} 0 of 0 refreshed on time (at most 1 min late)"
    )
    # A moment later the one due exactly a grace ago is overdue too.
    assert overview(page, "freshness") == "50% 2 of 4 refreshed on time (at most 1 min late)"
    assert overview(page, "queue") == "3 due now oldest due for 2 min"
    assert overview(page, "tracked") == "4"


async def test_redis_down_is_a_503_page(make_api: ApiFactory) -> None:
    async with make_api(redis_at=f"redis://127.0.0.1:{free_port()}/0") as (api, _):
        response = await api.get("/status")
    assert response.status_code == 503
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == STATUS_CSP
    assert response.headers["retry-after"] == "5"
    assert "Redis is unavailable" in text_of(response.text)
    assert "Redis unavailable: ConnectionError" in text_of(response.text)
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in response.text
