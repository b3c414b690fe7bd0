"""Admin writes: tracking in bulk, untracking, baselines, and the audit log of every admin write."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from aggregator.api.access import WRITE_ERRORS, key_fingerprint
from aggregator.api.deps import RuntimeDep, parse_url, require_write
from aggregator.api.errors import ApiError
from aggregator.api.models import (
    AuditEntryOut,
    AuditResponse,
    BaselineResult,
    BaselinesRequest,
    BaselinesResponse,
    ErrorBody,
    Refused,
    SetCountRequest,
    SetCountResponse,
    TrackManyRequest,
    TrackManyResponse,
    UntrackResponse,
)
from aggregator.runtime import Runtime
from aggregator.sources import EMAIL
from aggregator.urls import domain_allowed

router = APIRouter(prefix="/api/v1", tags=["admin"])
CLOSED_OR_NOT_ALLOWED = "Writes are closed (no admin key configured), or the domain is not allowed"
WriteDep = Annotated[bool, Depends(require_write)]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The body or the URL is not valid"},
    **WRITE_ERRORS,
    503: {"model": ErrorBody, "description": "Redis does not answer"},
}


def who(runtime: Runtime, admin: bool) -> str:
    """A fingerprint of the admin key for the audit log; `no-key` for an --insecure-open write."""
    fingerprint = key_fingerprint(runtime.settings) if admin else None
    return fingerprint or "no-key"


async def audit(runtime: Runtime, admin: bool, action: str, target: str, detail: str) -> None:
    await runtime.store.audit(time.time(), action, target, detail, who(runtime, admin))


def page(runtime: Runtime, raw: str, admin: bool) -> str:
    """The canonical URL of a page to write to; without the admin key, only one on the allowed
    domains (when any are set), so that nobody else makes flares poll a domain of their choice."""
    url = parse_url(raw, runtime.settings)
    allowed = runtime.settings.allowed_domains
    if not admin and allowed and not domain_allowed(url, allowed):
        raise ApiError(
            403,
            "domain not allowed",
            "the domain is not in FLARES_ALLOWED_DOMAINS; an admin key holder can track any domain",
        )
    return url


def network_name(runtime: Runtime, name: str) -> str:
    # Plugins that are installed count even when disabled: a retired network is where a
    # baseline matters most. E-mail shares have no network, only imported and clicked counts.
    if name != EMAIL and name not in runtime.providers:
        known = ", ".join(sorted([*runtime.providers, EMAIL]))
        raise ApiError(400, "unknown network", f"{name!r} is not one of {known}")
    return name


def error_body(exc: ApiError) -> ErrorBody:
    return ErrorBody(error=exc.error, detail=exc.detail)


@router.post("/urls/bulk", response_model=TrackManyResponse, responses=ERRORS)
async def track_many(
    runtime: RuntimeDep, body: TrackManyRequest, admin: WriteDep
) -> TrackManyResponse:
    """Track up to 1,000 pages at once (a sitemap's, say); a URL that cannot be is refused alone."""
    urls: list[str] = []
    refused: list[Refused] = []
    for raw in body.urls:
        try:
            urls.append(page(runtime, raw, admin))
        except ApiError as exc:
            refused.append(Refused(url=raw, error=error_body(exc)))
    unique = list(dict.fromkeys(urls))
    created = await runtime.store.track_many(unique, time.time())
    result = TrackManyResponse(created=created, tracked=len(unique) - created, refused=refused)
    detail = f"created {result.created}, tracked {result.tracked}, refused {len(refused)}"
    await audit(runtime, admin, "track.bulk", f"{len(body.urls)} urls", detail)
    return result


@router.delete(
    "/urls",
    response_model=UntrackResponse,
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "The page has no record"}},
)
async def untrack(
    runtime: RuntimeDep,
    admin: WriteDep,
    url: Annotated[str, Query(description="Page URL", max_length=4096)],
    purge: Annotated[bool, Query(description="Delete its record and counts too")] = False,
) -> UntrackResponse:
    """Stop fetching a page; its counts stay readable unless purged, and tracking it again
    resumes from them."""
    canonical = parse_url(url, runtime.settings)
    was_tracked = await runtime.store.untrack(canonical, purge=purge)
    if was_tracked is None:
        raise ApiError(404, "not tracked", f"{canonical} has no record")
    detail = "was tracked" if was_tracked else "was untracked already"
    await audit(runtime, admin, "purge" if purge else "untrack", canonical, detail)
    return UntrackResponse(url=canonical, was_tracked=was_tracked, purged=purge)


@router.put(
    "/counts",
    response_model=SetCountResponse,
    responses={**ERRORS, 403: {"model": ErrorBody, "description": CLOSED_OR_NOT_ALLOWED}},
)
async def set_count(
    runtime: RuntimeDep, body: SetCountRequest, admin: WriteDep
) -> SetCountResponse:
    """Set a baseline, the floor of one network's count for a page (tracked from then on): the
    count rises to it, never falls; with `reset` both become the value, even a lower one."""
    url = page(runtime, body.url, admin)
    network = network_name(runtime, body.network)
    store = runtime.store
    await store.track(url, time.time())
    [changed] = await store.set_baselines([(url, network, body.count)], reset=body.reset)
    record = await store.get(url)
    net = record.networks.get(network) if record is not None else None
    action = "baseline.reset" if body.reset else "baseline.set"
    detail = f"{network} {body.count}" + ("" if changed else ", unchanged")
    await audit(runtime, admin, action, url, detail)
    return SetCountResponse(
        url=url,
        network=network,
        count=net.count if net is not None else None,
        baseline=net.baseline if net is not None else None,
        changed=bool(changed),
    )


@router.post("/baselines", response_model=BaselinesResponse, responses=ERRORS)
async def import_baselines(
    runtime: RuntimeDep, body: BaselinesRequest, admin: WriteDep
) -> BaselinesResponse:
    """Set up to 1,000 baselines at once and track their pages; each row is answered on its
    own, and a row already as high as its value is unchanged, so a re-import changes nothing."""
    results: dict[int, BaselineResult] = {}
    rows: dict[int, tuple[str, str, int]] = {}
    for i, row in enumerate(body.rows):
        try:
            rows[i] = (page(runtime, row.url, admin), network_name(runtime, row.network), row.count)
        except ApiError as exc:
            results[i] = BaselineResult(status="error", error=error_body(exc))
    store = runtime.store
    await store.track_many(list(dict.fromkeys(url for url, _, _ in rows.values())), time.time())
    changed = await store.set_baselines(list(rows.values()))
    for i, change in zip(rows, changed, strict=True):
        if change is None:
            # Purged between the two calls.
            gone = ErrorBody(error="not tracked", detail=f"{rows[i][0]} was purged meanwhile")
            results[i] = BaselineResult(status="error", error=gone)
        else:
            results[i] = BaselineResult(status="ok" if change else "unchanged")
    ordered = [results[i] for i in range(len(body.rows))]
    statuses = [r.status for r in ordered]
    response = BaselinesResponse(
        results=ordered,
        imported=statuses.count("ok"),
        unchanged=statuses.count("unchanged"),
        errors=statuses.count("error"),
    )
    counted = f"imported {response.imported}, unchanged {response.unchanged}"
    detail = f"{counted}, errors {response.errors}"
    await audit(runtime, admin, "baseline.import", f"{len(ordered)} rows", detail)
    return response


@router.get("/audit", response_model=AuditResponse, responses=ERRORS)
async def audit_log(
    runtime: RuntimeDep,
    _: WriteDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first")] = 100,
) -> AuditResponse:
    """The newest admin writes: tracking, untracking, refreshes, baselines and imports."""
    entries = await runtime.store.audit_log(limit)
    return AuditResponse(
        entries=[
            AuditEntryOut(
                id=e.id,
                time=datetime.fromtimestamp(e.time, UTC),
                action=e.action,
                target=e.target,
                detail=e.detail,
                who=e.who,
            )
            for e in entries
        ]
    )
