"""Dependencies shared by the routers: the runtime, the write check, the reader, URL lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from aggregator.api.access import check_write
from aggregator.api.errors import ApiError
from aggregator.api.limits import Admission, client_address
from aggregator.config import Settings
from aggregator.runtime import Runtime
from aggregator.store import UrlRecord
from aggregator.urls import InvalidURL, canonical


async def get_runtime(request: Request) -> Runtime:
    # Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_write(
    request: Request, runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> bool:
    """Allow a write: with the admin key, or by anyone when `flares serve --insecure-open`
    started this app without one; returns whether the caller holds the key."""
    insecure_open: bool = request.app.state.insecure_open
    return check_write(runtime.settings, authorization, insecure_open)


async def get_admission(request: Request) -> Admission:
    # Not through RuntimeDep: every read route asks for this, and each dependency that FastAPI
    # solves costs a request some 10 us.
    runtime = await get_runtime(request)
    return Admission(runtime, client_address(request, runtime.settings.trusted_proxies))


AdmissionDep = Annotated[Admission, Depends(get_admission)]


def parse_url(raw: str, settings: Settings) -> str:
    try:
        return canonical(raw, settings.tracking_params)
    except InvalidURL as exc:
        raise ApiError(400, "invalid url", str(exc)) from exc


class NotTracked(ApiError):
    def __init__(self, url: str) -> None:
        super().__init__(
            404,
            "not tracked",
            f"{url} is not tracked and its domain is not in FLARES_ALLOWED_DOMAINS",
        )


async def lookup(runtime: Runtime, raw_url: str, admission: Admission) -> UrlRecord:
    """Find a URL, or the page it is an alias of (the record's `url` is the page's); on an
    allowed domain an untracked one is tracked on this first read, within the limits
    (aggregator/api/limits.py). An alias is never tracked on its own."""
    url = parse_url(raw_url, runtime.settings)
    record = await runtime.store.find(url)
    if record is None and await admission.track(url):
        record = await runtime.store.find(url)
    if record is None:
        raise NotTracked(url)
    return record
