"""Badge endpoints: an SVG with a page's total or one network's count, never an error status."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aggregator.api.deps import NotTracked, RuntimeDep, lookup
from aggregator.api.errors import ApiError
from aggregator.badges import metric, render_flat
from aggregator.runtime import Runtime

router = APIRouter(tags=["badges"])
TOTAL = "total"
OK_COLOR, PENDING_COLOR, ERROR_COLOR = "#007ec6", "#939393", "#dd4343"
OK_MAX_AGE, PENDING_MAX_AGE, ERROR_MAX_AGE = 300, 30, 60
SVG_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'",
}


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    color: str
    max_age: int


async def badge_for(runtime: Runtime, url: str | None, network: str) -> Badge:
    """What the badge says: the count, or in grey/red what kept it from showing one."""
    provider = runtime.providers.get(network)
    if network != TOTAL and provider is None:
        return Badge("flares", "unknown network", ERROR_COLOR, ERROR_MAX_AGE)
    label = provider.label.lower() if provider else "flares"
    if not url:
        return Badge(label, "missing url", ERROR_COLOR, ERROR_MAX_AGE)
    try:
        record = await lookup(runtime, url)
    except NotTracked:
        return Badge(label, "not tracked", PENDING_COLOR, ERROR_MAX_AGE)
    except ApiError:
        return Badge(label, "invalid url", ERROR_COLOR, ERROR_MAX_AGE)
    except (RedisConnectionError, RedisTimeoutError):
        return Badge(label, "unavailable", ERROR_COLOR, ERROR_MAX_AGE)
    if provider is None:
        has_count = any(n.count is not None for n in record.networks.values())
        count = record.total if has_count else None
    else:
        net = record.networks.get(network)
        count = net.count if net else None
    if count is None:
        return Badge(label, "pending", PENDING_COLOR, PENDING_MAX_AGE)
    return Badge(label, metric(count), OK_COLOR, OK_MAX_AGE)


def svg_response(badge: Badge, if_none_match: str | None) -> Response:
    svg = render_flat(badge.label, badge.message, color=badge.color)
    etag = '"' + hashlib.blake2b(svg.encode(), digest_size=12).hexdigest() + '"'
    headers = {**SVG_HEADERS, "ETag": etag, "Cache-Control": f"public, max-age={badge.max_age}"}
    if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(svg, media_type="image/svg+xml; charset=utf-8", headers=headers)


SVG_DOC: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/svg+xml": {}}, "description": "The badge, also for errors"},
    304: {"description": "Unchanged since the ETag sent in If-None-Match"},
}
UrlParam = Annotated[str | None, Query(description="Page URL", max_length=4096)]
EtagHeader = Annotated[str | None, Header()]


@router.get("/badge.svg", response_class=Response, responses=SVG_DOC)
async def badge(
    runtime: RuntimeDep,
    url: UrlParam = None,
    network: Annotated[str, Query(description="`total` or a provider name", max_length=64)] = TOTAL,
    if_none_match: EtagHeader = None,
) -> Response:
    """A flat badge: `flares | 251` for the total, `hacker news | 12` for one network."""
    return svg_response(await badge_for(runtime, url, network), if_none_match)


@router.get("/badge/{network}.svg", response_class=Response, responses=SVG_DOC)
async def network_badge(
    runtime: RuntimeDep, network: str, url: UrlParam = None, if_none_match: EtagHeader = None
) -> Response:
    """The same badge with the network in the path."""
    return svg_response(await badge_for(runtime, url, network), if_none_match)
