"""Request and response bodies of the HTTP API, as they appear in /openapi.json."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aggregator.config import Source
from aggregator.health import State

NetworkState = Literal["ok", "pending", "error", "baseline"]


# Longer than a URL may be (2,048), so that a long one is refused with the reason, on its own.
PageUrl = Annotated[str, Field(max_length=4096)]


class Body(BaseModel):
    """A request body: a value of the wrong JSON type is refused, never coerced (false is no
    count, "12" no number)."""

    model_config = ConfigDict(strict=True)


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, in one line")
    detail: Any = Field(default=None, description="Specifics, when there are any")


class TrackRequest(Body):
    url: str = Field(description="Absolute http(s) URL of the page", max_length=4096)


class TrackResponse(BaseModel):
    url: str = Field(description="The canonical form under which the page is tracked")
    created: bool = Field(description="False when the page was already tracked")


class NetworkCount(BaseModel):
    count: int | None = Field(
        description="Served count, taken from `source` (never lower than before); null if none yet"
    )
    source: Source = Field(
        description="Where `count` comes from: api (the network's), clicks (share clicks counted "
        "by flares' /share links) or max (the larger of the two)"
    )
    clicks: int = Field(description="Share clicks through /share, one per visitor a day")
    fetched_at: datetime | None = Field(description="When the network last answered for this URL")
    state: NetworkState = Field(
        description="ok, pending (not fetched yet), error (last fetch failed) or baseline "
        "(not fetched, the count is an imported or admin-set floor); with source clicks, ok "
        "once there is a count"
    )
    parts: dict[str, int] = Field(
        default_factory=dict,
        description="Components the network reports next to the count (e.g. shares, comments)",
    )


class CountsResponse(BaseModel):
    url: str
    state: Literal["ok", "pending"] = Field(description="pending until a first count is in")
    total: int = Field(description="Sum of the served counts of all networks: the flares")
    networks: dict[str, NetworkCount]
    tracked_at: datetime
    updated_at: datetime | None
    aliases: list[str] = Field(
        default_factory=list,
        description="Other URLs of this page (old permalinks, an old domain) whose counts the "
        "networks' counts include",
    )
    stale: bool = Field(
        default=False,
        description="true while Redis does not answer: these are the counts this server last "
        "served for the page (the response also carries `Flares-Stale: true`)",
    )


class DailyCount(BaseModel):
    # Annotated, not `= Field(...)`: a class attribute named `date` would hide the type.
    date: Annotated[date, Field(description="A UTC day")]
    count: int = Field(description="The served count at the end of the day (or now, for today)")


class HourlyCount(BaseModel):
    time: datetime = Field(description="The start of a UTC hour")
    count: int = Field(description="The served count at the end of the hour")


class HistoryResponse(BaseModel):
    url: str
    network: str = Field(description="A provider's name, or total: the sum of every network")
    daily: list[DailyCount] = Field(
        description="Every day from the first with a count (at most FLARES_HISTORY_DAYS ago) to "
        "today, oldest first"
    )
    hourly: list[HourlyCount] = Field(
        description="Every hour of the first 48 after the page was first tracked, from the first "
        "with a count; empty once that day is older than the daily history"
    )


class BulkCountsRequest(Body):
    urls: list[PageUrl] = Field(
        description="Page URLs, each answered on its own", min_length=1, max_length=1000
    )


class BulkCount(BaseModel):
    url: str = Field(description="As sent")
    status: Literal[200, 202, 400, 403, 404, 429, 503] = Field(
        description="What GET /api/v1/counts would answer for this URL alone (403, 429: a limit "
        "kept a read from tracking it; 503: Redis did not answer and this server has no "
        "last-served counts of the page)"
    )
    counts: CountsResponse | None = None
    error: ErrorBody | None = None


class BulkCountsResponse(BaseModel):
    results: list[BulkCount] = Field(description="In the order of the request")


class SiteTotals(BaseModel):
    domain: str
    pages: int = Field(description="Pages of the domain and its subdomains with a record")
    total: int = Field(description="Sum of the pages' served totals")
    networks: dict[str, int] = Field(description="Each network's served counts, summed")


class SitePage(BaseModel):
    url: str
    count: int


class SiteTop(BaseModel):
    domain: str
    network: str
    order: Literal["count"] = Field(description="Highest first; equal counts by URL")
    pages: list[SitePage]


class ProviderOut(BaseModel):
    name: str
    label: str
    status: Literal["live", "undocumented", "paid", "retired"] = Field(
        description="What the network offers, independent of how our calls go"
    )
    status_since: date | None = Field(description="Since when the status holds, e.g. retired on")
    docs_url: str | None = Field(description="The network's documentation of the endpoint")
    enabled: bool
    configured: bool
    state: State
    reason: str
    batch_size: int
    since: datetime | None = Field(description="Since when the state holds, where known")
    suspect: str | None = Field(
        description="Why the answers look like the network shutting down (0 for pages that had "
        "counts, 404 for every request), though the requests succeed; null when they do not"
    )
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: LastError | None
    hour: HourStats
    budget: BudgetOut
    urls_tracked: int
    queue: QueueOut
    breaker: Breaker


class LastError(BaseModel):
    kind: str | None = Field(description="e.g. http, timeout, connect, parse, throttled")
    status: int | None = Field(description="The HTTP status, when there was an answer")
    message: str = Field(description="Short, with every secret removed")


class HourStats(BaseModel):
    """Requests of the last hour, as every worker recorded them in Redis."""

    requests: int
    ok: int
    failed: int
    neutral: int = Field(description="Neither success nor failure: throttled, refused credentials")
    success_ratio: float | None = Field(description="ok / (ok + failed); null without requests")
    latency_p50: float | None = Field(description="Seconds, from a histogram")
    latency_p95: float | None = Field(description="Seconds, from a histogram")


class BudgetOut(BaseModel):
    limit: int = Field(description="Requests allowed per window")
    window_seconds: float
    used: float = Field(description="Requests counted in the current (sliding) window")
    left: float
    concurrency: int = Field(description="Requests at once, across every worker")


class QueueOut(BaseModel):
    """The due queue, which every provider shares."""

    due_now: int = Field(description="Tracked URLs due now")
    oldest_due_seconds: float | None = Field(
        description="How long the longest-waiting has been due"
    )


class Breaker(BaseModel):
    state: Literal["closed", "open", "half-open"]
    since: datetime | None = Field(description="When it opened; null while closed")
    next_probe: datetime | None = Field(description="When one request may test the network")


class ProvidersResponse(BaseModel):
    providers: list[ProviderOut]


class ReadyResponse(BaseModel):
    redis: str
    scheduler: str


class RefreshRequest(Body):
    """Exactly one of: a page, every page of a domain, or everything."""

    url: str | None = Field(default=None, max_length=4096)
    domain: str | None = Field(default=None, max_length=253)
    all: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> RefreshRequest:
        chosen = [self.url is not None, self.domain is not None, self.all]
        if sum(chosen) != 1:
            raise ValueError('give exactly one of "url", "domain" or "all": true')
        return self


class RefreshResponse(BaseModel):
    refreshed: int = Field(description="Tracked pages moved to the front of the queue")


class ShieldsEndpoint(BaseModel):
    """shields.io's endpoint-badge schema (version 1), for https://img.shields.io/endpoint."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    schema_version: Literal[1] = Field(default=1, alias="schemaVersion")
    label: str = Field(description="Left-hand text; empty hides the left part")
    message: str = Field(description="The count, or what kept the badge from showing one")
    color: str = Field(description="Right-hand colour")
    label_color: str = Field(alias="labelColor", description="Left-hand colour")
    is_error: bool = Field(
        alias="isError", description="An error badge: shields.io then ignores colour overrides"
    )
    cache_seconds: int = Field(alias="cacheSeconds", description="How long shields.io may cache")
    style: str | None = Field(default=None, description="The style asked for, if any")


# Each alias is one more request per page and network, in every variant its site fetches.
MAX_ALIASES = 20


class TrackManyRequest(Body):
    urls: list[PageUrl] = Field(description="Page URLs to track", min_length=1, max_length=1000)


class Refused(BaseModel):
    url: str = Field(description="As sent")
    error: ErrorBody


class TrackManyResponse(BaseModel):
    created: int = Field(description="Pages that were not tracked before")
    tracked: int = Field(description="Pages that were tracked already")
    refused: list[Refused] = Field(description="Invalid URLs and domains not allowed")


class BaselineRow(Body):
    url: PageUrl
    network: str = Field(description="A provider's name, or email", max_length=64)
    count: int = Field(description="The count the network had: a floor", ge=0)


class BaselinesRequest(Body):
    rows: list[BaselineRow] = Field(min_length=1, max_length=1000)


class BaselineResult(BaseModel):
    status: Literal["ok", "unchanged", "error"] = Field(
        description="ok: the baseline or the count rose; unchanged: it was already as high"
    )
    error: ErrorBody | None = None


class BaselinesResponse(BaseModel):
    results: list[BaselineResult] = Field(description="In the order of the request")
    imported: int
    unchanged: int
    errors: int


class SetCountRequest(BaselineRow):
    reset: bool = Field(
        default=False,
        description="Set count and baseline to `count` even when lower (the next fetch may "
        "raise it again); without it the count only rises",
    )


class SetCountResponse(BaseModel):
    url: str
    network: str
    count: int | None = Field(description="The count served now")
    baseline: int | None
    changed: bool


class UntrackResponse(BaseModel):
    url: str
    was_tracked: bool = Field(description="False when the page had been untracked already")
    purged: bool = Field(description="Whether its record and counts were deleted")


class AuditEntryOut(BaseModel):
    id: str = Field(description="The Redis stream entry id")
    time: datetime
    action: str = Field(description="e.g. track, untrack, purge, refresh, baseline.set")
    target: str = Field(description="The page, domain or batch the write was about")
    detail: str
    who: str = Field(description="A fingerprint of the admin key, or `no-key` without one")


class AuditResponse(BaseModel):
    entries: list[AuditEntryOut] = Field(description="Newest first")


class AliasesRequest(Body):
    url: PageUrl = Field(description="The tracked page")
    aliases: list[PageUrl] = Field(
        description="Every alias the page is to have (replacing those it had): URLs of the same "
        "page whose counts are fetched and added to its own",
        max_length=MAX_ALIASES,
    )


class AliasesResponse(BaseModel):
    url: str = Field(description="The page, canonical")
    aliases: list[str] = Field(description="Its aliases now, canonical")
    previous: list[str] = Field(description="The aliases it had before this request")
