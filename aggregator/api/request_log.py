"""Request ids and flares' own access log: one line per request, with no client address."""

from __future__ import annotations

import ipaddress
import logging
import random
import re
import string
import time
from urllib.parse import quote_from_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.logs import RequestContext, current_request

HEADER = b"x-request-id"
# An id a caller or a proxy chose is kept when it is short and plain (UUIDs, hex trace ids);
# anything else could forge or bloat log lines, and gets replaced.
SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Paths are logged as sent, still percent-encoded, and cut at this length.
MAX_PATH = 256
log = logging.getLogger("flares.access")


def request_id(scope: Scope, ids: random.Random) -> str:
    """The caller's X-Request-ID when it is safe to log, else a new one: 32 hex digits from
    `ids` (an id must be unique, not secret; uuid4 reads os.urandom, a system call a request)."""
    for name, value in scope["headers"]:
        if name == HEADER:
            given: str = value.decode("latin-1")
            if SAFE_ID.fullmatch(given):
                return given
    return f"{ids.getrandbits(128):032x}"


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def addresses(scope: Scope) -> tuple[str, ...]:
    """Every IP address the request names for its client: the socket peer and the entries of
    X-Forwarded-For (only addresses: a caller must not choose what its log lines lose)."""
    found = [scope["client"][0]] if scope.get("client") else []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            found += [hop.strip() for hop in value.decode("latin-1").split(",")]
    return tuple(a for a in found if is_address(a))


def logged_path(scope: Scope) -> str:
    """The path without its query (whose values are whatever the caller chose to put there),
    percent-encoded so that it cannot break a line of text."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    return quote_from_bytes(raw.partition(b"?")[0][:MAX_PATH], safe=string.punctuation)


class RequestLog:
    """ASGI middleware: gives each request an id (echoed in X-Request-ID) that every record
    logged while handling it carries, and logs its method, path, status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        # Seeded from os.urandom: the processes of `serve --workers` draw different ids.
        self._ids = random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid = request_id(scope, self._ids)
        token = current_request.set(RequestContext(rid, addresses(scope)))
        started = time.perf_counter()
        # What the client gets when the app raises before answering.
        status = 500

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, rid.encode())]
            await send(message)

        try:
            await self._app(scope, receive, with_id)
        finally:
            millis = (time.perf_counter() - started) * 1000
            path = logged_path(scope)
            log.info(
                "%s %s %d %.1fms",
                scope["method"],
                path,
                status,
                millis,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(millis, 2),
                },
            )
            current_request.reset(token)
