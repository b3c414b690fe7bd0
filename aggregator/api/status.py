"""GET /status: every provider's health and the freshness of the served counts, as HTML."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aggregator.api.deps import RuntimeDep
from aggregator.api.providers import provider_views
from aggregator.config import Settings
from aggregator.status import Overview, render_status, render_unavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["status"])

# No script, no load from anywhere: the page is its own inline styles and nothing else.
STATUS_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
STATUS_HEADERS: Final = {
    "Content-Security-Policy": STATUS_CSP,
    # Health a minute old is wrong health: neither the browser nor a proxy may keep it.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def freshness_grace(settings: Settings) -> float:
    """How late a due URL may be and still count as fresh, in seconds."""
    # A due URL waits up to one tick to be claimed, and one more when the tick before is still
    # busy (ticks never overlap); 60 s absorb a slow batch (timeouts, retries with backoff) and
    # clocks that differ between workers, so only a scheduler that falls behind shows here.
    return 2 * settings.schedule.tick_seconds + 60


@router.get(
    "/status",
    response_class=HTMLResponse,
    responses={503: {"content": {"text/html": {}}, "description": "Redis is unavailable"}},
)
async def status_page(runtime: RuntimeDep) -> HTMLResponse:
    """A page for people: provider health and fresh counts; no JavaScript, reloads itself."""
    now = time.time()
    moment = datetime.fromtimestamp(now, UTC)
    grace = freshness_grace(runtime.settings)
    try:
        views = await provider_views(runtime, list(runtime.providers))
        fresh, tracked = await runtime.store.freshness(now, grace)
        alive = await runtime.store.scheduler_alive()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("status page: Redis unavailable: %s", exc)
        body = render_unavailable(f"unavailable: {type(exc).__name__}", moment)
        headers = {**STATUS_HEADERS, "Retry-After": "5"}
        return HTMLResponse(body, status_code=503, headers=headers)
    overview = Overview(
        redis="ok",
        scheduler="ok" if alive else "no recent tick",
        tracked=tracked,
        fresh=fresh,
        grace=grace,
        # Every provider's view carries the one queue they share.
        queue=views[0].queue if views else None,
    )
    return HTMLResponse(render_status(overview, views, moment), headers=STATUS_HEADERS)
