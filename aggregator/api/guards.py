"""Two ASGI middlewares at the door: CORS open for reads and closed for writes, and a cap on the
size of a request body, declared or streamed."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.api.errors import error_response

READ_METHODS: Final = frozenset({"GET", "HEAD"})
# The bulk read: a POST only because a thousand URLs do not fit in a query string.
BULK_READ: Final = ("POST", "/api/v1/counts")
# What a page may send with a read, and read back from the answer.
ALLOW_HEADERS: Final = frozenset({"content-type", "if-none-match"})
EXPOSE_HEADERS: Final = "ETag, Retry-After, Flares-Stale"
PREFLIGHT_SECONDS: Final = "600"


def is_read(method: str, path: str) -> bool:
    return method in READ_METHODS or (method, path.rstrip("/")) == BULK_READ


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class ReadOnlyCors:
    """Any origin may read (GET, HEAD and the bulk read), without credentials; no origin may
    write: a write gets no CORS header, and the preflight of one is refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, b"origin") is None:
            await self.app(scope, receive, send)
            return
        requested = _header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            await self._preflight(scope, requested.upper())(scope, receive, send)
            return
        if not is_read(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_open(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_open)

    def _preflight(self, scope: Scope, method: str) -> Response:
        asked = _header(scope, b"access-control-request-headers") or ""
        headers = {h.strip().lower() for h in asked.split(",") if h.strip()}
        if not is_read(method, scope["path"]):
            return error_response(
                403,
                "cross-origin write refused",
                "browsers may read flares from any origin, never write to it",
            )
        if not headers <= ALLOW_HEADERS:
            return error_response(
                403,
                "cross-origin header refused",
                f"a cross-origin read may send only {', '.join(sorted(ALLOW_HEADERS))}",
            )
        methods = "POST" if method == "POST" else "GET, HEAD"
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": ", ".join(sorted(ALLOW_HEADERS)),
                "Access-Control-Max-Age": PREFLIGHT_SECONDS,
            },
        )


class BodyTooLarge(HTTPException):
    """A request body grew past the limit while the app read it."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


def too_large(limit: int) -> JSONResponse:
    return error_response(
        413,
        "request body too large",
        f"a request body may hold at most {limit} bytes (FLARES_LIMITS__MAX_BODY_BYTES)",
    )


class BodyLimit:
    """Refuse a body over `limit` bytes with 413: at once when Content-Length says so, else as
    soon as the bytes streamed in pass it (chunked bodies have no Content-Length)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                problem = "Content-Length must be a number of bytes"
                await error_response(400, "invalid request", problem)(scope, receive, send)
                return
            if int(declared) > self.limit:
                await too_large(self.limit)(scope, receive, send)
                return
        if _header(scope, b"transfer-encoding") is None:
            # The body is as long as its Content-Length says, or empty without one (RFC 9112
            # 6.3): only a chunked one can grow past the limit, and needs counting.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # Read outside a route (whose errors become JSON inside the app): answered here.
            if started:
                raise
            await too_large(self.limit)(scope, receive, send)


def install(app: FastAPI, max_body_bytes: int) -> None:
    """Add both middlewares (the body limit outermost) and the 413 answer of a route."""

    async def body_too_large(_: Request, exc: Exception) -> JSONResponse:
        return too_large(max_body_bytes)

    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_middleware(ReadOnlyCors)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
