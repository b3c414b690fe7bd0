"""Reddit: the app-only OAuth token endpoint and `/api/info` answering a t3 Listing."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes import (
    CountOf,
    FakeRequest,
    FakeResponse,
    IssuedTokens,
    NetworkFake,
    json_answer,
)

# The only client credentials the fake accepts; tests configure the provider with them.
CLIENT_ID = "flares-test-client"
CLIENT_SECRET = "r3ddit/secret+key=&1"
UNAUTHORIZED = {"message": "Unauthorized", "error": 401}

TOKENS = IssuedTokens()
revoke_tokens = TOKENS.revoke


def comments_for(score: int) -> int:
    """The comments of a submission, derived from its score so tests can predict the sum."""
    return score // 3


def link(url: str, score: int, n: int) -> dict[str, Any]:
    return {
        "kind": "t3",
        "data": {
            "subreddit": "worldnews",
            "id": f"fk{n}",
            "name": f"t3_fk{n}",
            "title": "A submission",
            "score": score,
            "ups": score,
            "num_comments": comments_for(score),
            "url": url,
            "permalink": f"/r/worldnews/comments/fk{n}/a_submission/",
        },
    }


def _basic_auth_ok(request: FakeRequest) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        return False
    return decoded == f"{CLIENT_ID}:{CLIENT_SECRET}"


def _token(request: FakeRequest) -> FakeResponse:
    if not _basic_auth_ok(request):
        return json_answer(UNAUTHORIZED, 401)
    form = dict(parse_qsl(request.body.decode(errors="replace")))
    if form.get("grant_type") != "client_credentials":
        return json_answer({"error": "unsupported_grant_type"}, 400)
    token = f"fake-reddit-token-{TOKENS.next_serial()}"
    TOKENS.add(token)
    return json_answer(
        {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}
    )


def _info(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if not TOKENS.known(request.headers.get("authorization", "")):
        return json_answer(UNAUTHORIZED, 401)
    url = request.param("url")
    count = count_of(url)
    # The score split over two submissions (two subreddits) so the parser's sum is exercised.
    scores = [s for s in (count - count // 2, count // 2) if s > 0]
    children = [link(url, score, n) for n, score in enumerate(scores)]
    return json_answer(
        {
            "kind": "Listing",
            "data": {
                "modhash": "",
                "dist": len(children),
                "children": children,
                "after": None,
                "before": None,
            },
        }
    )


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if request.path == "/api/v1/access_token":
        return _token(request)
    return _info(request, count_of)


FAKE = NetworkFake("reddit", (r"/api/v1/access_token", r"/api/info"), answer)
