"""Badge endpoints: a page's total or one network's count as an SVG, never an error status.

The lookup, the error handling and the cached, ETag-bearing response are shared with the share
bar (aggregator/api/bar.py) and the shields.io endpoint JSON (aggregator/api/shields.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from aggregator.api.badge_params import (
    GREY,
    OK_MAX_AGE,
    PENDING_MAX_AGE,
    TOTAL,
    TOTAL_LABEL,
    Badge,
    BadgeError,
    EtagHeader,
    Look,
    LookDep,
    NetworkParam,
    Numbers,
    NumbersDep,
    UrlParam,
    pending,
)
from aggregator.api.deps import NotTracked
from aggregator.api.errors import STORE_DOWN, ApiError
from aggregator.api.lastserved import LastServed, Read, ReaderDep, read
from aggregator.api.limits import Admission, LimitReached
from aggregator.badges import render_badge
from aggregator.runtime import Runtime
from aggregator.sources import Served
from aggregator.store import UrlRecord

# What the bar, the shields JSON, the widget and bench/badge.py take from here; the widget
# takes the cache times, BadgeError and EtagHeader from here too.
__all__ = [
    "OK_MAX_AGE",
    "PENDING_MAX_AGE",
    "SVG_DOC",
    "SVG_HEADERS",
    "SVG_TYPE",
    "BadgeError",
    "EtagHeader",
    "QueriedBadge",
    "badge_response",
    "badge_route",
    "cached_response",
    "read_found",
    "read_record",
    "router",
    "svg_error",
    "svg_response",
]
SVG_TYPE = "image/svg+xml; charset=utf-8"
SVG_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'",
}


async def read_found(
    runtime: Runtime, url: str | None, admission: Admission, last: LastServed | None = None
) -> Read:
    """The page's counts (while Redis is away, the last served, if `last` holds them), or a
    BadgeError saying why there are none."""
    if not url:
        raise BadgeError("missing url")
    try:
        return await read(runtime, last, url, admission)
    except NotTracked as exc:
        # An untracked page is tracked on first read only on an allowed domain, so with an
        # allow-list this page never will be; without one an admin must track it.
        reason = "not allowed" if runtime.settings.allowed_domains else "not tracked"
        raise BadgeError(reason) from exc
    except LimitReached as exc:
        # Not the page's fault: grey, and short-lived like any error badge.
        raise BadgeError(exc.badge, GREY) from exc
    except ApiError as exc:
        raise BadgeError("invalid url") from exc
    except STORE_DOWN as exc:
        raise BadgeError("unavailable", GREY) from exc


async def read_record(runtime: Runtime, url: str | None, admission: Admission) -> UrlRecord:
    """The page's counts, or a BadgeError saying why there are none."""
    return (await read_found(runtime, url, admission)).record


async def badge_for(
    runtime: Runtime,
    admission: Admission,
    last: LastServed,
    url: str | None,
    network: str,
    look: Look,
    numbers: Numbers,
) -> Badge:
    """What the badge says: the count, or in grey/red what kept it from showing one."""
    provider = runtime.providers.get(network)
    if network != TOTAL and provider is None:
        return BadgeError("unknown network").badge(TOTAL_LABEL, look)
    label = provider.label.lower() if provider else TOTAL_LABEL
    try:
        found = await read_found(runtime, url, admission, last)
    except BadgeError as exc:
        return exc.badge(label, look)
    served = Served(found.record, runtime.sources)
    if provider is None:
        count = served.total if served.counted else None
    else:
        count = served.count(network)
    if count is None:
        return pending().badge(label, look)
    badge = look.badge(label, count, numbers)
    # Last-served counts are shown, but caches are to ask again soon for current ones.
    return replace(badge, max_age=PENDING_MAX_AGE) if found.stale else badge


async def queried_badge(
    reader: ReaderDep,
    look: LookDep,
    numbers: NumbersDep,
    url: UrlParam = None,
    network: NetworkParam = TOTAL,
) -> Badge:
    """The badge for `?url=...&network=...`, as /badge.svg and the shields JSON serve it."""
    return await badge_for(
        reader.runtime, reader.admission, reader.last, url, network, look, numbers
    )


QueriedBadge = Annotated[Badge, Depends(queried_badge)]


def invalid_parameters(exc: RequestValidationError) -> BadgeError:
    """The error for a query that did not validate, naming the parameters at fault."""
    names = dict.fromkeys(str(err["loc"][-1]) for err in exc.errors())
    return BadgeError("invalid " + ", ".join(names))


def badge_route(respond: Callable[[Badge, Request], Response]) -> type[APIRoute]:
    """A route class that answers a query that fails validation with an error badge."""

    class BadgeRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    return respond(invalid_parameters(exc).badge(TOTAL_LABEL), request)

            return handle

    return BadgeRoute


def cached_response(
    body: bytes,
    media_type: str,
    max_age: int,
    if_none_match: str | None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The body with a content-hash ETag and max-age; 304 when the client already holds it."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    all_headers = {**(headers or {}), "ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if if_none_match is not None:
        # If-None-Match compares weakly (RFC 9110 13.1.2), so W/"x" matches "x".
        held = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if etag in held or "*" in held:
            return Response(status_code=304, headers=all_headers)
    return Response(body, media_type=media_type, headers=all_headers)


def svg_response(svg: str, max_age: int, if_none_match: str | None) -> Response:
    return cached_response(svg.encode(), SVG_TYPE, max_age, if_none_match, SVG_HEADERS)


# A page's badge repeats until its count moves, and drawing it costs about a third of the
# Redis read; entries are small (label and colours are length-capped): a few MB at most.
draw = lru_cache(maxsize=4096)(render_badge)


def badge_response(badge: Badge, style: str | None, if_none_match: str | None) -> Response:
    svg = draw(
        badge.label,
        badge.message,
        style=style or "flat",
        color=badge.color,
        label_color=badge.label_color,
    )
    return svg_response(svg, badge.max_age, if_none_match)


def svg_error(badge: Badge, request: Request) -> Response:
    return badge_response(badge, None, request.headers.get("if-none-match"))


SVG_DOC: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/svg+xml": {}}, "description": "The image, also for errors"},
    304: {"description": "Unchanged since the ETag sent in If-None-Match"},
}
router = APIRouter(tags=["badges"], route_class=badge_route(svg_error))


@router.get("/badge.svg", response_class=Response, responses=SVG_DOC)
async def badge(found: QueriedBadge, look: LookDep, if_none_match: EtagHeader = None) -> Response:
    """A badge: `flares | 251` for the total, `hacker news | 12` for one network."""
    return badge_response(found, look.style, if_none_match)


@router.get("/badge/{network}.svg", response_class=Response, responses=SVG_DOC)
async def network_badge(
    reader: ReaderDep,
    network: str,
    look: LookDep,
    numbers: NumbersDep,
    url: UrlParam = None,
    if_none_match: EtagHeader = None,
) -> Response:
    """The same badge with the network in the path."""
    found = await badge_for(
        reader.runtime, reader.admission, reader.last, url, network, look, numbers
    )
    return badge_response(found, look.style, if_none_match)
