"""Counts of many pages in one request, read in one Redis round trip."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response

from aggregator.api.counts import ERRORS, counts_body, json_response
from aggregator.api.deps import RuntimeDep, parse_url
from aggregator.api.errors import ApiError
from aggregator.api.models import BulkCountsRequest, BulkCountsResponse
from aggregator.urls import domain_allowed

router = APIRouter(prefix="/api/v1", tags=["counts"])


@router.post("/counts", response_model=BulkCountsResponse, responses=ERRORS)
async def bulk_counts(runtime: RuntimeDep, body: BulkCountsRequest) -> Response:
    """The counts of up to 1,000 pages; each URL gets the status a single GET would give it,
    and untracked pages on allowed domains start being tracked, as on a single read."""
    canonical: dict[int, str] = {}
    results: dict[int, dict[str, Any]] = {}
    for i, raw in enumerate(body.urls):
        try:
            canonical[i] = parse_url(raw, runtime.settings)
        except ApiError as exc:
            error = {"error": exc.error, "detail": exc.detail}
            results[i] = {"url": raw, "status": 400, "counts": None, "error": error}
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
            error = {"error": "not tracked", "detail": detail}
            results[i] = {"url": body.urls[i], "status": 404, "counts": None, "error": error}
        else:
            counts = counts_body(runtime, record)
            status = 202 if counts["state"] == "pending" else 200
            results[i] = {"url": body.urls[i], "status": status, "counts": counts, "error": None}
    return json_response({"results": [results[i] for i in range(len(body.urls))]})
