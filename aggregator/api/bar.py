"""The whole share bar as one SVG, for READMEs and e-mail where no script runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from aggregator.api.badge_params import (
    OK_MAX_AGE,
    PENDING_MAX_AGE,
    TOTAL_LABEL,
    BadgeError,
    EtagHeader,
    Numbers,
    NumbersDep,
    UrlParam,
    pending,
)
from aggregator.api.badges import (
    SVG_DOC,
    badge_response,
    badge_route,
    read_found,
    svg_error,
    svg_response,
)
from aggregator.api.lastserved import ReaderDep
from aggregator.badges.bar import Segment, render_bar
from aggregator.runtime import Runtime
from aggregator.sources import Served

router = APIRouter(tags=["badges"], route_class=badge_route(svg_error))
# Long enough to name a typo in the error badge, short enough to keep the badge small.
MAX_NAME_SHOWN = 32
FLARES = "Flares"


def pick_networks(runtime: Runtime, networks: str | None) -> list[str]:
    """The provider names asked for, in order and once each; BadgeError names an unknown one."""
    names = dict.fromkeys(n.strip().lower() for n in (networks or "").split(",") if n.strip())
    for name in names:
        if name not in runtime.providers:
            raise BadgeError(f"unknown network: {name[:MAX_NAME_SHOWN]}")
    return list(names)


def segments(runtime: Runtime, served: Served, names: list[str], numbers: Numbers) -> list[Segment]:
    """One button per network; humble mode (total below `min`) hides every number."""
    humble = numbers.hides(served.total)
    shown = []
    for name in names:
        count = served.count(name)
        provider = runtime.providers[name]
        text = None if humble or count is None else numbers.text(count)
        shown.append(Segment(provider.label, text, provider.color))
    return shown


@router.get("/bar.svg", response_class=Response, responses=SVG_DOC)
async def bar(
    reader: ReaderDep,
    numbers: NumbersDep,
    url: UrlParam = None,
    networks: Annotated[
        str | None,
        Query(
            description="Comma-separated provider names, in the order to show them "
            "(default: every active network and any other holding a count, by name)",
            max_length=1024,
        ),
    ] = None,
    if_none_match: EtagHeader = None,
) -> Response:
    """`251 Flares  Twitter 110  Facebook 58 ...`: the total, then each network's count."""
    runtime = reader.runtime
    try:
        names = pick_networks(runtime, networks)
        found = await read_found(runtime, url, reader.admission, reader.last)
        record = found.record
        served = Served(record, runtime.sources)
        if not served.counted:
            raise pending()
    except BadgeError as exc:
        return badge_response(exc.badge(TOTAL_LABEL), None, if_none_match)
    lead = FLARES if numbers.hides(served.total) else f"{numbers.text(served.total)} {FLARES}"
    names = names or runtime.shown(record)
    svg = render_bar(lead, segments(runtime, served, names, numbers))
    # Last-served counts are shown, but caches are to ask again soon for current ones.
    max_age = PENDING_MAX_AGE if found.stale else numbers.max_age(OK_MAX_AGE)
    return svg_response(svg, max_age, if_none_match)
