"""Tracking pages and reading their counts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response

from aggregator.api.access import WRITE_ERRORS
from aggregator.api.admin import CLOSED_OR_NOT_ALLOWED, audit, page
from aggregator.api.deps import RuntimeDep, parse_url, require_write
from aggregator.api.errors import ApiError
from aggregator.api.lastserved import STALE_HEADERS, ReaderDep
from aggregator.api.limits import LIMIT_ERRORS
from aggregator.api.models import (
    CountsResponse,
    ErrorBody,
    NetworkState,
    RefreshRequest,
    RefreshResponse,
    TrackRequest,
    TrackResponse,
)
from aggregator.config import Source
from aggregator.runtime import Runtime
from aggregator.sources import Served
from aggregator.store import NetworkRecord, UrlRecord

router = APIRouter(prefix="/api/v1", tags=["counts"])
JSON = "application/json"
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The URL is not an absolute http(s) URL"},
    503: {"model": ErrorBody, "description": "Redis does not answer"},
}


def timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def network_state(rec: NetworkRecord | None, source: Source) -> NetworkState:
    # Clicks need no fetch: the first one makes the number.
    if source == "clicks" and rec is not None:
        return "ok"
    if rec is None or (rec.fetched_at is None and rec.failed_at is None):
        # A retired network never answers: an imported floor is all it will ever show.
        return "baseline" if rec is not None and rec.baseline else "pending"
    # The store keeps a failure time only until the next success.
    if rec.failed_at is not None:
        return "error"
    return "ok"


def counts_body(runtime: Runtime, record: UrlRecord, *, stale: bool = False) -> dict[str, Any]:
    """The counts of one URL as CountsResponse's JSON: every active provider, plus networks that
    hold a count. Plain data, not models: a bulk answer holds ten thousand network entries, and
    building and validating models for data the store has typed already took most of its time
    (tests/test_api.py validates the result against the model)."""
    served = Served(record, runtime.sources)
    counts = served.counts
    networks = {}
    for name in sorted(runtime.active | record.networks.keys()):
        rec, source = record.networks.get(name), served.source(name)
        networks[name] = {
            "count": counts.get(name),
            "source": source,
            "clicks": rec.clicks if rec else 0,
            "fetched_at": timestamp(rec.fetched_at) if rec else None,
            "state": network_state(rec, source),
            "parts": rec.parts if rec else {},
        }
    return {
        "url": record.url,
        "state": "ok" if counts else "pending",
        "total": served.total,
        "networks": networks,
        "tracked_at": datetime.fromtimestamp(record.tracked_at, UTC),
        "updated_at": timestamp(record.updated_at),
        "aliases": list(record.aliases),
        "stale": stale,
    }


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON as the models would write it (UTC times end in Z), without validating it again."""
    content = orjson.dumps(body, option=orjson.OPT_UTC_Z)
    return Response(content, status, headers=headers, media_type=JSON)


@router.get(
    "/counts",
    response_model=CountsResponse,
    responses={
        **ERRORS,
        202: {"model": CountsResponse, "description": "Tracked, first counts not fetched yet"},
        404: {"model": ErrorBody, "description": "Not tracked and not on an allowed domain"},
        **LIMIT_ERRORS,
    },
)
async def get_counts(
    reader: ReaderDep, url: Annotated[str, Query(description="Page URL", max_length=4096)]
) -> Response:
    """Total and per-network counts of one page, served from Redis; while Redis is away, the
    counts last served, marked `stale` (and with a `Flares-Stale` header), else 503."""
    found = await reader.read(url)
    body = counts_body(reader.runtime, found.record, stale=found.stale)
    status = 202 if body["state"] == "pending" else 200
    return json_response(body, status, STALE_HEADERS if found.stale else None)


@router.post(
    "/urls",
    response_model=TrackResponse,
    status_code=201,
    responses={
        **ERRORS,
        200: {"model": TrackResponse, "description": "Already tracked"},
        401: WRITE_ERRORS[401],
        403: {"model": ErrorBody, "description": CLOSED_OR_NOT_ALLOWED},
    },
)
async def track_url(
    runtime: RuntimeDep,
    body: TrackRequest,
    response: Response,
    admin: Annotated[bool, Depends(require_write)],
) -> TrackResponse:
    """Start tracking a page; it is fetched at the next scheduler tick."""
    url = page(runtime, body.url, admin)
    created = await runtime.store.track(url, time.time())
    await audit(runtime, admin, "track", url, "created" if created else "already tracked")
    if not created:
        response.status_code = 200
    return TrackResponse(url=url, created=created)


@router.post(
    "/refresh",
    response_model=RefreshResponse,
    responses={
        **ERRORS,
        **WRITE_ERRORS,
        404: {"model": ErrorBody, "description": "The page is not tracked"},
    },
)
async def refresh(
    runtime: RuntimeDep, body: RefreshRequest, admin: Annotated[bool, Depends(require_write)]
) -> RefreshResponse:
    """Move pages to the front of the queue; every network fetches them anew, within budget."""
    now = time.time()
    if body.url is not None:
        target = parse_url(body.url, runtime.settings)
        refreshed = await runtime.store.refresh([target], now)
        if not refreshed:
            raise ApiError(404, "not tracked", f"{target} is not tracked")
    elif body.domain is not None:
        target = body.domain.strip().lower().rstrip(".")
        refreshed = await runtime.store.refresh_domain(target, now)
    else:
        target, refreshed = "all", await runtime.store.refresh_all(now)
    await audit(runtime, admin, "refresh", target, f"refreshed {refreshed}")
    return RefreshResponse(refreshed=refreshed)
