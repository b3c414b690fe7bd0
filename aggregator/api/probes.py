"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from aggregator.api.deps import RuntimeDep
from aggregator.api.models import ReadyResponse

router = APIRouter(tags=["probes"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Redis answers and some scheduler (this process or a worker) ticked recently."""
    try:
        await runtime.store.ping()
        redis = "ok"
        scheduler = "ok" if await runtime.store.scheduler_alive() else "no recent tick"
    except RedisError as exc:
        redis, scheduler = f"unavailable: {type(exc).__name__}", "unknown"
    body = ReadyResponse(redis=redis, scheduler=scheduler)
    ready = redis == "ok" and scheduler == "ok"
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
