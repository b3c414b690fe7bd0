"""Dependencies shared by the routers: the runtime, the admin check, URL lookup."""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import Depends, Header, Request

from aggregator.api.errors import ApiError
from aggregator.config import Settings
from aggregator.runtime import Runtime
from aggregator.store import UrlRecord
from aggregator.urls import InvalidURL, canonical, domain_allowed


async def get_runtime(request: Request) -> Runtime:
    # Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def is_admin(runtime: Runtime, authorization: str | None) -> bool:
    """Whether the request carries the configured admin key (compared in constant time)."""
    key = runtime.settings.admin_key
    if key is None or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), key.get_secret_value().encode()
    )


async def require_write(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> bool:
    """Allow a write: with the key when one is configured; returns whether the caller is admin."""
    if runtime.settings.admin_key is None:
        return False
    if not is_admin(runtime, authorization):
        raise ApiError(
            401,
            "admin key required",
            "send Authorization: Bearer <FLARES_ADMIN_KEY>",
            {"WWW-Authenticate": "Bearer"},
        )
    return True


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


async def lookup(runtime: Runtime, raw_url: str) -> UrlRecord:
    """Find a URL; on an allowed domain an untracked one is tracked on this first read."""
    url = parse_url(raw_url, runtime.settings)
    record = await runtime.store.get(url)
    if record is None and domain_allowed(url, runtime.settings.allowed_domains):
        await runtime.store.track(url, time.time())
        record = await runtime.store.get(url)
    if record is None:
        raise NotTracked(url)
    return record
