"""Bluesky: createSession with an app password, and searchPosts answering postViews."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from tests.fakes import (
    CountOf,
    FakeRequest,
    FakeResponse,
    IssuedTokens,
    NetworkFake,
    json_answer,
)

# The only account the fake accepts; tests configure the provider with it.
HANDLE = "flares-test.bsky.social"
APP_PASSWORD = "abcd-3fgh/ijk+mnop"
DID = "did:plc:flarestest0000000000000"
PAGE_LIMIT = 100
# How long the fake's access tokens live (atproto's own are about two hours).
LIFETIME = 7200

TOKENS = IssuedTokens()
revoke_tokens = TOKENS.revoke


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token: header.payload.signature, base64url without padding."""
    header = {"typ": "at+jwt", "alg": "ES256K"}
    return ".".join(
        [
            _b64(json.dumps(header).encode()),
            _b64(json.dumps(claims).encode()),
            _b64(b"not a real signature"),
        ]
    )


def _session(request: FakeRequest) -> FakeResponse:
    try:
        body = json.loads(request.body)
    except ValueError:
        return json_answer({"error": "InvalidRequest", "message": "Invalid JSON body"}, 400)
    if (
        not isinstance(body, dict)
        or body.get("identifier") != HANDLE
        or body.get("password") != APP_PASSWORD
    ):
        refused = {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
        return json_answer(refused, 401)
    now = int(time.time())
    serial = TOKENS.next_serial()
    claims = {
        "scope": "com.atproto.appPass",
        "sub": DID,
        "iat": now,
        "exp": now + LIFETIME,
        "aud": "did:web:bsky.social",
        "jti": f"fake-{serial}",
    }
    access = jwt(claims)
    TOKENS.add(access)
    refresh = jwt({"scope": "com.atproto.refresh", "sub": DID, "jti": f"refresh-{serial}"})
    return json_answer({"accessJwt": access, "refreshJwt": refresh, "handle": HANDLE, "did": DID})


def post_view(url: str, n: int) -> dict[str, Any]:
    """A post that links `url` with an external embed, as searchPosts returns it."""
    rkey = f"3kfake{n:06d}"
    return {
        "uri": f"at://{DID}/app.bsky.feed.post/{rkey}",
        "cid": f"bafyreifake{n:06d}",
        "author": {"did": DID, "handle": HANDLE},
        "record": {
            "$type": "app.bsky.feed.post",
            "text": f"Worth reading {url}",
            "createdAt": "2025-01-01T00:00:00.000Z",
            "embed": {
                "$type": "app.bsky.embed.external",
                "external": {"uri": url, "title": "A page", "description": ""},
            },
        },
        "embed": {
            "$type": "app.bsky.embed.external#view",
            "external": {"uri": url, "title": "A page", "description": ""},
        },
        "replyCount": 0,
        "repostCount": n % 3,
        "likeCount": n % 5,
        "quoteCount": 0,
        "indexedAt": "2025-01-01T00:00:01.000Z",
        "labels": [],
    }


def _search(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if not TOKENS.known(request.headers.get("authorization", "")):
        refused = {"error": "AuthenticationRequired", "message": "Authentication Required"}
        return json_answer(refused, 401)
    if not request.param("q"):
        return json_answer(
            {"error": "InvalidRequest", "message": 'Error: Params must have "q"'}, 400
        )
    url = request.param("url")
    count = count_of(url)
    limit = min(PAGE_LIMIT, int(request.param("limit", "25")))
    posts = [post_view(url, n) for n in range(min(count, limit))]
    data: dict[str, Any] = {"posts": posts}
    if count > limit:
        # hitsTotal is optional; the fake gives it (and a cursor) only when the page is full.
        data.update(cursor=str(limit), hitsTotal=count)
    return json_answer(data)


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if request.path.endswith("createSession"):
        return _session(request)
    return _search(request, count_of)


FAKE = NetworkFake(
    "bluesky",
    (r"/xrpc/com\.atproto\.server\.createSession", r"/xrpc/app\.bsky\.feed\.searchPosts"),
    answer,
)
