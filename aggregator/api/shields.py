"""The shields.io endpoint-badge JSON, so that a count can also be drawn by shields.io."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from aggregator.api.badge_params import Badge, EtagHeader, LookDep
from aggregator.api.badges import QueriedBadge, badge_route, cached_response
from aggregator.api.models import ShieldsEndpoint
from aggregator.badges import STYLES

JSON_TYPE = "application/json"


def endpoint_response(badge: Badge, style: str | None, if_none_match: str | None) -> Response:
    """The badge as endpoint JSON, with the same ETag and max-age as the SVG."""
    body = ShieldsEndpoint(
        label=badge.label,
        message=badge.message,
        color=badge.color,
        label_color=badge.label_color,
        is_error=badge.is_error,
        cache_seconds=badge.max_age,
        # shields.io rejects the whole document over a style it does not know.
        style=style if style in STYLES else None,
    )
    content = body.model_dump_json(exclude_none=True).encode()
    return cached_response(content, JSON_TYPE, badge.max_age, if_none_match)


def endpoint_error(badge: Badge, request: Request) -> Response:
    return endpoint_response(badge, None, request.headers.get("if-none-match"))


router = APIRouter(prefix="/api/v1", tags=["badges"], route_class=badge_route(endpoint_error))


@router.get(
    "/shields",
    response_model=ShieldsEndpoint,
    response_model_exclude_none=True,
    responses={304: {"description": "Unchanged since the ETag sent in If-None-Match"}},
)
async def shields(found: QueriedBadge, look: LookDep, if_none_match: EtagHeader = None) -> Response:
    """For `https://img.shields.io/endpoint?url=<this URL>`; errors are 200 with `isError`."""
    return endpoint_response(found, look.style, if_none_match)
