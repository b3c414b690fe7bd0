"""Counts of many pages in one request, read in one Redis round trip."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Response

from aggregator.api.counts import ERRORS, counts_body
from aggregator.api.deps import RuntimeDep, parse_url
from aggregator.api.errors import ApiError
from aggregator.api.models import BulkCount, BulkCountsRequest, BulkCountsResponse, ErrorBody
from aggregator.urls import domain_allowed

router = APIRouter(prefix="/api/v1", tags=["counts"])


@router.post("/counts", response_model=BulkCountsResponse, responses=ERRORS)
async def bulk_counts(runtime: RuntimeDep, body: BulkCountsRequest) -> Response:
    """The counts of up to 1,000 pages; each URL gets the status a single GET would give it,
    and untracked pages on allowed domains start being tracked, as on a single read."""
    canonical: dict[int, str] = {}
    results: dict[int, BulkCount] = {}
    for i, raw in enumerate(body.urls):
        try:
            canonical[i] = parse_url(raw, runtime.settings)
        except ApiError as exc:
            error = ErrorBody(error=exc.error, detail=exc.detail)
            results[i] = BulkCount(url=raw, status=400, error=error)
    unique = list(dict.fromkeys(canonical.values()))
    store = runtime.store
    records = await store.get_many(unique)
    allowed = runtime.settings.allowed_domains
    new = [u for u in unique if records[u] is None and domain_allowed(u, allowed)]
    if new:
        await store.track_many(new, time.time())
        records.update(await store.get_many(new))
    for i, url in canonical.items():
        record = records[url]
        if record is None:
            detail = f"{url} is not tracked and its domain is not in FLARES_ALLOWED_DOMAINS"
            error = ErrorBody(error="not tracked", detail=detail)
            results[i] = BulkCount(url=body.urls[i], status=404, error=error)
        else:
            counts = counts_body(runtime, record)
            status: Literal[200, 202] = 202 if counts.state == "pending" else 200
            results[i] = BulkCount.model_construct(url=body.urls[i], status=status, counts=counts)
    answer = BulkCountsResponse.model_construct(results=[results[i] for i in range(len(body.urls))])
    # Serialized here: FastAPI would validate the thousand answers against the model again.
    return Response(answer.model_dump_json(), media_type="application/json")
