"""A page's counts over time: the JSON series, and the trend badge drawn from them.

The store keeps a point only where a count or a network's share clicks changed; both routes
follow the number each network shows (its source), spread the points over every day (or hour),
carrying a count forward until its next point, and sum networks for the total.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from aggregator.api.badge_params import (
    LABEL_COLOR,
    OK_COLOR,
    OK_MAX_AGE,
    TOTAL,
    TOTAL_LABEL,
    BadgeError,
    EtagHeader,
    Look,
    NetworkParam,
    Numbers,
    NumbersDep,
    UrlParam,
    pending,
)
from aggregator.api.badges import (
    SVG_DOC,
    badge_response,
    badge_route,
    read_record,
    svg_error,
    svg_response,
)
from aggregator.api.counts import ERRORS
from aggregator.api.deps import AdmissionDep, RuntimeDep, lookup
from aggregator.api.errors import ApiError
from aggregator.api.limits import LIMIT_ERRORS
from aggregator.api.models import DailyCount, ErrorBody, HistoryResponse, HourlyCount
from aggregator.badges.trend import render_trend
from aggregator.config import Source
from aggregator.sources import Served
from aggregator.store import HOURLY_SECONDS, Series

DAY, HOUR = 86_400, 3_600
TREND_DAYS = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

json_router = APIRouter(prefix="/api/v1", tags=["history"])
badge_router = APIRouter(tags=["badges"], route_class=badge_route(svg_error))

Points = Sequence[tuple[int, int]]


def carried(series: Sequence[Points], steps: Sequence[int]) -> list[int]:
    """At each step, the sum over `series` of each one's last count at or before it."""
    totals = [0] * len(steps)
    for points in series:
        j, last = 0, 0
        for k, step in enumerate(steps):
            while j < len(points) and points[j][0] <= step:
                last = points[j][1]
                j += 1
            totals[k] += last
    return totals


def spread(series: Sequence[Points], floor: int, end: int) -> list[tuple[int, int]]:
    """(step, total) for every step from the first point (not before `floor`) to `end` (or the
    last point, which a process whose clock runs ahead may have written later)."""
    series = [points for points in series if points]
    if not series:
        return []
    start = max(min(points[0][0] for points in series), floor)
    steps = range(start, max(end, *(points[-1][0] for points in series)) + 1)
    return list(zip(steps, carried(series, steps), strict=True))


def larger(a: Points, b: Points) -> list[tuple[int, int]]:
    """At each step of either, the larger of the two counts carried forward."""
    steps = sorted({t for t, _ in (*a, *b)})
    return list(zip(steps, map(max, carried([a], steps), carried([b], steps)), strict=True))


def served(series: Series, source: Source) -> Series:
    """The points of the number a network shows (aggregator/sources.py): its count, its clicks
    (each never below the floor), or the larger of the two."""
    clicks = series.clicks or Series(daily=[])
    if source == "api":
        return series
    if source == "clicks":
        return clicks
    return Series(larger(series.daily, clicks.daily), larger(series.hourly, clicks.hourly))


def picked(
    history: Mapping[str, Series], network: str, sources: Mapping[str, Source]
) -> list[Series]:
    """The served series that make up `network`: all of them for the total."""
    names = list(history) if network == TOTAL else [network] if network in history else []
    return [served(history[name], sources.get(name, "api")) for name in names]


def daily(series: Sequence[Series], now: float, days: int) -> list[tuple[int, int]]:
    """(day, count) for each of the last `days` days that has a count, today last."""
    today = int(now // DAY)
    return spread([s.daily for s in series], today - days + 1, today)


def hourly(
    series: Sequence[Series], tracked_at: float, now: float, days: int
) -> list[tuple[int, int]]:
    """(hour, count) for each hour of the first HOURLY_SECONDS tracked that has a count, while
    the store keeps them (the tracking day is in the daily history)."""
    if tracked_at < (now // DAY - days + 1) * DAY:
        return []
    end = int(min(now, tracked_at + HOURLY_SECONDS - 1) // HOUR)
    return spread([s.hourly for s in series], 0, end)


@json_router.get(
    "/history",
    response_model=HistoryResponse,
    responses={
        **ERRORS,
        400: {"model": ErrorBody, "description": "The URL or the network is not valid"},
        404: {"model": ErrorBody, "description": "Not tracked and not on an allowed domain"},
        **LIMIT_ERRORS,
    },
)
async def get_history(
    runtime: RuntimeDep,
    admission: AdmissionDep,
    url: Annotated[str, Query(description="Page URL", max_length=4096)],
    network: NetworkParam = TOTAL,
) -> HistoryResponse:
    """A page's daily counts (and hourly ones for its first 48 hours) of one network or all."""
    record = await lookup(runtime, url, admission)
    history = await runtime.store.history(record.url)
    if network != TOTAL and network not in runtime.providers and network not in history:
        raise ApiError(400, "unknown network", f"{network!r} is not a provider's name or total")
    series = picked(history, network, runtime.sources)
    now, days = time.time(), runtime.store.history_days
    return HistoryResponse(
        url=record.url,
        network=network,
        daily=[
            DailyCount(date=(_EPOCH + timedelta(days=day)).date(), count=count)
            for day, count in daily(series, now, days)
        ],
        hourly=[
            HourlyCount(time=_EPOCH + timedelta(hours=hour), count=count)
            for hour, count in hourly(series, record.tracked_at, now, days)
        ],
    )


def trend_text(values: Sequence[int], numbers: Numbers) -> str:
    """What the line shows, for screen readers: "up 12 in 30 days"."""
    days = f"{len(values)} day" + ("s" if len(values) > 1 else "")
    moved = values[-1] - values[0]
    if not moved:
        return f"no change in {days}"
    # Only an admin's reset of a count makes it go down.
    return f"{'up' if moved > 0 else 'down'} {numbers.text(abs(moved))} in {days}"


@badge_router.get("/badge/trend.svg", response_class=Response, responses=SVG_DOC)
async def trend_badge(
    runtime: RuntimeDep,
    admission: AdmissionDep,
    numbers: NumbersDep,
    url: UrlParam = None,
    network: NetworkParam = TOTAL,
    label: Annotated[
        str | None, Query(description="Left-hand text; empty removes the left part", max_length=100)
    ] = None,
    if_none_match: EtagHeader = None,
) -> Response:
    """`flares 30d | 251 /`: a page's count and a line through its last 30 days' counts."""
    provider = runtime.providers.get(network)
    name = provider.label.lower() if provider else TOTAL_LABEL
    look = Look(label, None, None, None)
    shown = f"{name} {TREND_DAYS}d" if label is None else label
    try:
        if network != TOTAL and provider is None:
            raise BadgeError("unknown network")
        record = await read_record(runtime, url, admission)
        served = Served(record, runtime.sources)
        count = served.count(network) if provider else (served.total if served.counted else None)
        if count is None:
            raise pending()
        history = await runtime.store.history(record.url)
    except BadgeError as exc:
        return badge_response(exc.badge(shown, look), None, if_none_match)
    if numbers.hides(count):
        return badge_response(look.badge(shown, count, numbers), None, if_none_match)
    days = daily(picked(history, network, runtime.sources), time.time(), TREND_DAYS)
    # A page counted before its history began has today's count alone.
    values = [c for _, c in days] or [count]
    spoken = f"{label or name}: {numbers.text(count)}, {trend_text(values, numbers)}"
    svg = render_trend(
        shown, numbers.text(count), values, spoken=spoken, fill=OK_COLOR, label_fill=LABEL_COLOR
    )
    return svg_response(svg, numbers.max_age(OK_MAX_AGE), if_none_match)


# One router for app.py, which must include it before the badges' (it says why).
router = APIRouter()
router.include_router(json_router)
router.include_router(badge_router)
