"""A site's totals and its most shared pages."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from aggregator.api.counts import ERRORS
from aggregator.api.deps import RuntimeDep
from aggregator.api.errors import ApiError
from aggregator.api.models import ErrorBody, SitePage, SiteTop, SiteTotals
from aggregator.runtime import Runtime
from aggregator.sources import Served

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])
TOTAL = "total"
# A site view walks every tracked URL in Redis: it is computed at most this often per domain
# and process, however many readers ask.
CACHE_SECONDS = 60.0
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}")


@dataclass(frozen=True)
class Site:
    """Each page's served counts per network, as one walk found them."""

    pages: dict[str, dict[str, int]]
    at: float


@dataclass
class SiteCache:
    """Site views of one process, each kept CACHE_SECONDS; one walk at a time per domain."""

    sites: dict[str, Site] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def get(self, runtime: Runtime, domain: str) -> Site:
        async with self.locks.setdefault(domain, asyncio.Lock()):
            site = self.sites.get(domain)
            if site is None or time.monotonic() - site.at > CACHE_SECONDS:
                records = await runtime.store.site(domain)
                pages = {r.url: Served(r, runtime.sources).counts for r in records}
                site = self.sites[domain] = Site(pages, time.monotonic())
            return site


def parse_domain(raw: str) -> str:
    domain = raw.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise ApiError(400, "invalid domain", "a host name such as example.com, without scheme")
    return domain


DomainPath = Annotated[str, Path(description="The site's domain; subdomains are included")]
SITE_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    400: {"model": ErrorBody, "description": "Not a domain name"},
}


@router.get("/{domain}", response_model=SiteTotals, responses=SITE_ERRORS)
async def site_totals(runtime: RuntimeDep, request: Request, domain: DomainPath) -> SiteTotals:
    """The flares of a whole site: pages with a record, their total, and each network's sum."""
    name = parse_domain(domain)
    site = await request.app.state.sites.get(runtime, name)
    networks: dict[str, int] = {}
    for counts in site.pages.values():
        for network, count in counts.items():
            networks[network] = networks.get(network, 0) + count
    return SiteTotals(
        domain=name,
        pages=len(site.pages),
        total=sum(networks.values()),
        networks=dict(sorted(networks.items())),
    )


@router.get(
    "/{domain}/top",
    response_model=SiteTop,
    responses={**SITE_ERRORS, 404: {"model": ErrorBody, "description": "No such network"}},
)
async def site_top(
    runtime: RuntimeDep,
    request: Request,
    domain: DomainPath,
    network: Annotated[str, Query(description="`total` or a network", max_length=64)] = TOTAL,
    limit: Annotated[int, Query(ge=1, le=100, description="How many pages")] = 10,
) -> SiteTop:
    """A site's most shared pages, by total or by one network; ties by URL."""
    name = parse_domain(domain)
    if network != TOTAL and network not in runtime.providers and network != "email":
        raise ApiError(404, "unknown network", f"installed: {', '.join(runtime.providers)}")
    site = await request.app.state.sites.get(runtime, name)

    def count(counts: dict[str, int]) -> int:
        return sum(counts.values()) if network == TOTAL else counts.get(network, 0)

    ranked = sorted(site.pages.items(), key=lambda item: (-count(item[1]), item[0]))[:limit]
    return SiteTop(
        domain=name,
        network=network,
        order="count",
        pages=[SitePage(url=url, count=count(counts)) for url, counts in ranked],
    )
