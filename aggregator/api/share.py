"""Share links: /share/{network} counts one share per visitor a day, then redirects to the
network's share page (a mailto: link for e-mail).

A visitor is a keyed BLAKE2b hash of the (UTC) day, the client address and the User-Agent. Only
the hash reaches Redis, into a HyperLogLog of that page, network and day, so neither address nor
User-Agent can turn up in its data, slow log or MONITOR. The key is FLARES_SHARE_SALT, else a
random salt per day that Redis keeps for two days, after which nobody can tell whose a hash was.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Annotated, Final, TypeGuard
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from aggregator.api.counts import ERRORS
from aggregator.api.deps import AdmissionDep, RuntimeDep, lookup
from aggregator.api.errors import ApiError
from aggregator.api.limits import LIMIT_ERRORS, client_address, day_salt
from aggregator.api.models import ErrorBody
from aggregator.badges.svg import safe_link
from aggregator.runtime import Runtime
from aggregator.sources import EMAIL

router = APIRouter(tags=["share"])

# A share page wants a line of title; more only lengthens every link.
TITLE_MAX: Final = 300
DAY_SECONDS: Final = 86_400
# Conservative: only what announces itself as a machine (crawlers, link previews, HTTP
# libraries, headless browsers), so that no person's share goes uncounted; Cubot is a phone.
BOTS: Final = re.compile(
    r"(?<!cu)bot\b|crawl|spider|slurp|archiver|facebookexternalhit|preview|headless|phantomjs|"
    r"lighthouse|curl/|wget/|python-|aiohttp|go-http-client|java/|okhttp|libwww|scrapy|"
    r"node-fetch|axios/",
    re.IGNORECASE,
)
# A cached redirect would skip flares (a share not counted); the network is told nothing of
# the page the click came from.
REDIRECT_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def clock() -> float:
    """Now, in seconds since 1970: the day a click counts in (tests move it)."""
    return time.time()


def counts_as_person(user_agent: str | None) -> TypeGuard[str]:
    """Whether a click may be a person's: a User-Agent that names no bot (none at all is a bot)."""
    if user_agent is None or not user_agent.strip():
        return False
    return BOTS.search(user_agent) is None


def visitor_hash(salt: str, day: int, address: str, user_agent: str) -> str:
    """One visitor on one day, unrecognisable without the salt."""
    # BLAKE2b takes a key of at most 64 bytes; a configured salt may be longer.
    key = hashlib.blake2b(salt.encode(), digest_size=32).digest()
    message = f"{day}\x00{address}\x00{user_agent}".encode()
    return hashlib.blake2b(message, key=key, digest_size=16).hexdigest()


def share_page(runtime: Runtime, network: str, url: str, title: str) -> str | None:
    """The network's share page for a page; None where flares knows none (or no safe one)."""
    title = title[:TITLE_MAX]
    if network == EMAIL:
        return f"mailto:?subject={quote(title, safe='')}&body={quote(url, safe='')}"
    provider = runtime.providers.get(network)
    return safe_link(provider.share_link(url, title)) if provider else None


def counted_link(
    request: Request, runtime: Runtime, network: str, url: str, title: str
) -> str | None:
    """flares' own link that counts a share on `network`, absolute on the requested host; None
    where the network has no share page."""
    if share_page(runtime, network, url, title) is None:
        return None
    link = request.url_for("share", network=network)
    return str(link.include_query_params(url=url, title=title[:TITLE_MAX]))


async def count_share(runtime: Runtime, request: Request, network: str, url: str) -> None:
    """Count the click unless it comes from a bot or from a visitor counted today."""
    user_agent = request.headers.get("user-agent")
    if not counts_as_person(user_agent):
        return
    day = int(clock() // DAY_SECONDS)
    salt = await day_salt(runtime, day)
    address = client_address(request, runtime.settings.trusted_proxies)
    visitor = visitor_hash(salt, day, address, user_agent)
    await runtime.store.count_click(url, network, visitor, day)


@router.get(
    "/share/{network}",
    response_class=RedirectResponse,
    status_code=302,
    responses={
        **ERRORS,
        302: {"description": "Counted (unless a bot or a repeat today); on to the share page"},
        404: {"model": ErrorBody, "description": "Unknown network, or a page not tracked"},
        **LIMIT_ERRORS,
    },
)
async def share(
    runtime: RuntimeDep,
    admission: AdmissionDep,
    request: Request,
    network: str,
    url: Annotated[str, Query(description="Page URL", max_length=4096)],
    title: Annotated[str, Query(description="Page title, for the share page")] = "",
) -> RedirectResponse:
    """Count one share of a tracked page on a network, then go to the network's share page.

    Only tracked pages (or, as on a read, pages on an allowed domain) are counted and redirected
    to; the redirect goes to the network, never to the page, so it cannot be an open redirect.
    """
    record = await lookup(runtime, url, admission)
    page = share_page(runtime, network, record.url, title)
    if page is None:
        raise ApiError(404, "unknown network", f"no share page for {network[:64]!r}")
    await count_share(runtime, request, network, record.url)
    return RedirectResponse(page, status_code=302, headers=REDIRECT_HEADERS)
