"""Counts of many pages in one request, read in one Redis round trip."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from aggregator.api.counts import ERRORS, counts_body, json_response
from aggregator.api.deps import AdmissionDep, RuntimeDep, parse_url
from aggregator.api.errors import STORE_DOWN, STORE_DOWN_DETAIL, ApiError
from aggregator.api.lastserved import STALE_HEADERS, LastServedDep
from aggregator.api.limits import Admission, LimitReached
from aggregator.api.models import BulkCountsRequest, BulkCountsResponse
from aggregator.runtime import Runtime
from aggregator.store import UrlRecord

router = APIRouter(prefix="/api/v1", tags=["counts"])


async def read_many(
    runtime: Runtime, urls: list[str], admission: Admission
) -> tuple[dict[str, UrlRecord | None], dict[str, LimitReached]]:
    """The pages' records (an alias's is its page's); untracked ones on allowed domains are
    tracked, within the limits, and read again. Also the pages a limit kept from being
    tracked, with the limit."""
    store = runtime.store
    records = await store.find_many(urls)
    added: list[str] = []
    refused: dict[str, LimitReached] = {}
    for url in urls:
        try:
            if records[url] is None and await admission.track(url):
                added.append(url)
        except LimitReached as exc:
            refused[url] = exc
    if added:
        records.update(await store.get_many(added))
    return records, refused


def stale_answer(
    runtime: Runtime,
    urls: list[str],
    canonical: dict[int, str],
    held: dict[str, UrlRecord | None],
    results: dict[int, dict[str, Any]],
) -> Response:
    """The answer while Redis is away: the last-served counts of the pages this server holds."""
    for i, url in canonical.items():
        record = held[url]
        if record is None:
            error = {"error": "the store is unavailable", "detail": STORE_DOWN_DETAIL}
            results[i] = {"url": urls[i], "status": 503, "counts": None, "error": error}
        else:
            counts = counts_body(runtime, record, stale=True)
            status = 202 if counts["state"] == "pending" else 200
            results[i] = {"url": urls[i], "status": status, "counts": counts, "error": None}
    body = {"results": [results[i] for i in range(len(urls))]}
    return json_response(body, headers=STALE_HEADERS)


@router.post("/counts", response_model=BulkCountsResponse, responses=ERRORS)
async def bulk_counts(
    runtime: RuntimeDep, last: LastServedDep, admission: AdmissionDep, body: BulkCountsRequest
) -> Response:
    """The counts of up to 1,000 pages; each URL gets the status a single GET would give it,
    and untracked pages on allowed domains start being tracked, as on a single read. While
    Redis is away: the counts last served, marked `stale`, and 503 for the others."""
    canonical: dict[int, str] = {}
    results: dict[int, dict[str, Any]] = {}
    for i, raw in enumerate(body.urls):
        try:
            canonical[i] = parse_url(raw, runtime.settings)
        except ApiError as exc:
            error = {"error": exc.error, "detail": exc.detail}
            results[i] = {"url": raw, "status": 400, "counts": None, "error": error}
    unique = list(dict.fromkeys(canonical.values()))
    try:
        records, refused = await read_many(runtime, unique, admission)
    except STORE_DOWN:
        held = {url: last.get(url) for url in unique}
        if not any(held.values()):
            raise
        return stale_answer(runtime, body.urls, canonical, held, results)
    for url, record in records.items():
        if record is not None:
            last.keep(record, url)
    for i, url in canonical.items():
        record = records[url]
        if url in refused:
            limit = refused[url]
            error = {"error": limit.error, "detail": limit.detail}
            status = limit.status
            results[i] = {"url": body.urls[i], "status": status, "counts": None, "error": error}
        elif record is None:
            detail = f"{url} is not tracked and its domain is not in FLARES_ALLOWED_DOMAINS"
            error = {"error": "not tracked", "detail": detail}
            results[i] = {"url": body.urls[i], "status": 404, "counts": None, "error": error}
        else:
            counts = counts_body(runtime, record)
            status = 202 if counts["state"] == "pending" else 200
            results[i] = {"url": body.urls[i], "status": status, "counts": counts, "error": None}
    return json_response({"results": [results[i] for i in range(len(body.urls))]})
