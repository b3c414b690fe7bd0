"""One JSON error shape, `{"error": ..., "detail": ...}`, for every failure the API reports."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ClusterDownError, OutOfMemoryError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from aggregator.store import UrlIdCollision

log = logging.getLogger(__name__)
# What Redis raises while it is away, restarting (loading its data), failing over or full: the
# store is unavailable for now, which is a 503 (or the last-served counts), never a 500.
STORE_DOWN: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    ClusterDownError,
)
STORE_DOWN_DETAIL = "Redis does not answer; retry shortly"


class ApiError(Exception):
    """An error the client should see, with its HTTP status."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route takes at the request's path, for a 405's Allow header."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the first route's methods; one path may have several routes.
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return error_response(exc.status_code, str(exc.detail), None, headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"where": ".".join(str(p) for p in err.get("loc", ())), "problem": err.get("msg", "")}
        for err in exc.errors()
    ]
    return error_response(400, "invalid request", problems)


async def _store_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unavailable: %s", exc)
    return error_response(
        503,
        "the store is unavailable",
        STORE_DOWN_DETAIL,
        {"Retry-After": "5"},
    )


async def _id_collision(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UrlIdCollision)
    return error_response(409, "url id collision", str(exc))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal error", "the error was logged")


def without_422(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The app's OpenAPI generator, less FastAPI's 422 answers: invalid requests get a 400 here
    (or, on badge routes, an error image), so routes declare what they do answer themselves."""

    def openapi() -> dict[str, Any]:
        document = generate()
        for item in document.get("paths", {}).values():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return document

    return openapi


def install(app: FastAPI) -> None:
    """Route every error through the one JSON shape, and document it so."""
    app.openapi = without_422(app.openapi)  # type: ignore[method-assign]
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for down in STORE_DOWN:
        app.add_exception_handler(down, _store_down)
    app.add_exception_handler(UrlIdCollision, _id_collision)
    app.add_exception_handler(Exception, _unexpected)
