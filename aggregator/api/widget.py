"""The share widget: /widget renders a page's share bar as HTML, /embed.js puts it into pages."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response

from aggregator.api.badges import (
    OK_MAX_AGE,
    PENDING_MAX_AGE,
    BadgeError,
    EtagHeader,
    cached_response,
    read_record,
)
from aggregator.api.deps import AdmissionDep, RuntimeDep
from aggregator.api.share import counted_link
from aggregator.runtime import Runtime
from aggregator.sources import Served
from aggregator.store import UrlRecord
from aggregator.widget import EMBED_JS, FRAME_JS_SOURCE, Button, render_bar, render_message

router = APIRouter(tags=["widget"])

# Nothing but the inline styles and the one hashed inline script: no load from anywhere.
WIDGET_CSP: Final = (
    f"default-src 'none'; style-src 'unsafe-inline'; script-src {FRAME_JS_SOURCE}; "
    "base-uri 'none'; form-action 'none'"
)
# Other sites load both: let pages with COEP embed them, and pass no visitor's page on.
CROSS_SITE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Referrer-Policy": "no-referrer",
}
WIDGET_HEADERS: Final = {**CROSS_SITE_HEADERS, "Content-Security-Policy": WIDGET_CSP}
HTML_TYPE: Final = "text/html; charset=utf-8"
# The script's URL has no version in it: a day lets a fix reach every page within one, and
# the ETag keeps the daily check to a 304.
EMBED_MAX_AGE: Final = 86_400
EMBED_BODY: Final = EMBED_JS.encode()
CACHED: dict[int | str, dict[str, object]] = {
    304: {"description": "Unchanged since the ETag sent in If-None-Match"}
}


@router.get(
    "/embed.js",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}, "description": "The script"}, **CACHED},
)
async def embed_js(if_none_match: EtagHeader = None) -> Response:
    """The script that renders the share bar into every `[data-flares-url]` element."""
    return cached_response(
        EMBED_BODY,
        "text/javascript; charset=utf-8",
        EMBED_MAX_AGE,
        if_none_match,
        CROSS_SITE_HEADERS,
    )


def chosen_networks(runtime: Runtime, record: UrlRecord, wanted: str | None) -> list[str]:
    """The networks asked for (installed ones, in that order), else the page's own."""
    if wanted:
        names = (name.strip() for name in wanted.split(","))
        return list(dict.fromkeys(name for name in names if name in runtime.providers))
    return runtime.shown(record)


def bar(
    runtime: Runtime, request: Request, record: UrlRecord, title: str, wanted: str | None
) -> tuple[str, int]:
    """The bar's HTML and how long it may be cached; each button goes through /share."""
    served = Served(record, runtime.sources)
    buttons = []
    for name in chosen_networks(runtime, record, wanted):
        provider = runtime.providers[name]
        link = counted_link(request, runtime, name, record.url, title)
        buttons.append(Button.make(provider.label, served.count(name), provider.color, link))
    body = render_bar(record.url, served.total if served.counted else None, buttons)
    return body, OK_MAX_AGE if served.counted else PENDING_MAX_AGE


@router.get(
    "/widget",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "The bar, or why not"}, **CACHED},
)
async def widget(
    runtime: RuntimeDep,
    admission: AdmissionDep,
    request: Request,
    url: Annotated[str | None, Query(description="Page URL")] = None,
    title: Annotated[str, Query(description="Page title, for the share pages")] = "",
    networks: Annotated[
        str | None, Query(description="Comma-separated networks, in order; default: all polled")
    ] = None,
    if_none_match: EtagHeader = None,
) -> Response:
    """A page's share bar as a self-contained HTML page for an iframe; needs no JavaScript."""
    try:
        record = await read_record(runtime, url, admission)
        body, max_age = bar(runtime, request, record, title, networks)
    except BadgeError as exc:
        # Always 200 and a sentence, as the badges do: the page shows inside a publisher's page.
        message = f"No share counts for this page: {exc.message}."
        body, max_age = render_message(message), exc.max_age
    return cached_response(body.encode(), HTML_TYPE, max_age, if_none_match, WIDGET_HEADERS)
