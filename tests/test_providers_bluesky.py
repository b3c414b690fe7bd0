"""Bluesky provider: session step, JWT expiry, search request, the pure parser, the executor."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import ParseError
from providers.bluesky import FALLBACK_LIFETIME, MAX_LIFETIME, Bluesky, jwt_expiry
from tests.fakes import bluesky as fake_bluesky
from tests.fakeupstream import FakeUpstream
from tests.provider_checks import (
    SettingsFactory,
    assert_counts_or_parse_error,
    json_values,
    open_executor,
    parse_error,
    settings_for,
    token_parse_error,
)

URL = "https://example.com/article"
CREDS = {"handle": "me.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: object) -> str:
    return ".".join(
        [b64(b'{"typ":"at+jwt","alg":"ES256K"}'), b64(json.dumps(claims).encode()), "sig"]
    )


def session_body(access: str) -> bytes:
    return json.dumps(
        {"accessJwt": access, "refreshJwt": "r.e.f", "handle": "me.bsky.social", "did": "did:plc:x"}
    ).encode()


def post(n: int) -> dict[str, Any]:
    return {
        "uri": f"at://did:plc:x/app.bsky.feed.post/{n}",
        "cid": f"c{n}",
        "author": {"did": "did:plc:x", "handle": "me.bsky.social"},
        "record": {"$type": "app.bsky.feed.post", "text": URL, "createdAt": "2025-01-01T00:00:00Z"},
        "likeCount": 2,
        "repostCount": 1,
        "replyCount": 0,
        "quoteCount": 0,
        "indexedAt": "2025-01-01T00:00:00Z",
    }


def search_body(n: int, **extra: Any) -> bytes:
    return json.dumps({"posts": [post(i) for i in range(n)], **extra}).encode()


# --- declared data and requests ---


def test_docstring_says_why_it_is_off_by_default() -> None:
    doc = Bluesky.__doc__ or ""
    assert "not a share counter" in doc and "discourages automated search" in doc


def test_token_request() -> None:
    req = Bluesky.token_request(None, CREDS)
    assert req is not None
    assert (req.method, req.url) == (
        "POST",
        "https://bsky.social/xrpc/com.atproto.server.createSession",
    )
    assert req.json == {"identifier": "me.bsky.social", "password": "abcd-efgh-ijkl-mnop"}
    assert not req.params and req.form is None and req.basic_auth is None


def test_build_request() -> None:
    req = Bluesky.build_request([URL], None, {**CREDS, "token": "a.b.c"})
    assert (req.method, req.url) == ("GET", "https://bsky.social/xrpc/app.bsky.feed.searchPosts")
    assert list(req.params) == [("q", URL), ("url", URL), ("limit", "100")]
    assert req.headers == {"Authorization": "Bearer a.b.c"}
    # The app password stays in the session step.
    assert CREDS["app_password"] not in repr(req)


# --- session answers and JWT expiry ---


def test_parse_token_reads_exp() -> None:
    access = jwt({"scope": "com.atproto.appPass", "exp": int(time.time()) + 7200})
    token = Bluesky.parse_token(session_body(access))
    assert token.value == access
    assert 7190 <= token.expires_in <= 7200


def test_parse_token_expired_is_zero_lifetime() -> None:
    token = Bluesky.parse_token(session_body(jwt({"exp": 1_000_000})))
    assert token.expires_in == 0


def test_parse_token_caps_far_future_exp() -> None:
    token = Bluesky.parse_token(session_body(jwt({"exp": 10**12})))
    assert token.expires_in == MAX_LIFETIME


@pytest.mark.parametrize(
    "access",
    [
        "opaque-token",
        "a.b",
        "a.!!!.c",
        "a." + b64(b"not json") + ".c",
        jwt(["exp", 5]),
        jwt({"iat": 5}),
        jwt({"exp": "9999999999"}),
        jwt({"exp": True}),
        jwt({"exp": None}),
        "a." + b64(b'{"exp": NaN}') + ".c",
        "a." + b64(b'{"exp": Infinity}') + ".c",
    ],
)
def test_parse_token_without_readable_exp_assumes_short_lifetime(access: str) -> None:
    assert jwt_expiry(access) is None
    token = Bluesky.parse_token(session_body(access))
    assert (token.value, token.expires_in) == (access, FALLBACK_LIFETIME)


def test_jwt_expiry_takes_padded_and_unpadded_payloads() -> None:
    assert jwt_expiry(jwt({"exp": 1700000000})) == 1700000000.0
    padded = "a." + base64.urlsafe_b64encode(b'{"exp":1700000000.5}').decode() + ".c"
    assert jwt_expiry(padded) == 1700000000.5


@pytest.mark.parametrize(
    "raw",
    [
        b'{"refreshJwt":"r","handle":"h","did":"d"}',
        b'{"accessJwt":"","refreshJwt":"r"}',
        b'{"accessJwt":5}',
        b'{"accessJwt":null}',
        b'{"error":"AuthenticationRequired","message":"Invalid identifier or password"}',
        b'{"accessJwt":"a.b.c","refre',
    ],
)
def test_parse_token_rejects(raw: bytes) -> None:
    token_parse_error(Bluesky, raw)


# --- search answers ---


def test_counts_posts_without_hits_total() -> None:
    assert Bluesky.parse([URL], search_body(3)) == {URL: 3}


def test_no_posts_is_zero() -> None:
    assert Bluesky.parse([URL], b'{"posts":[]}') == {URL: 0}
    assert Bluesky.parse([URL], b'{"posts":[],"hitsTotal":0}') == {URL: 0}


def test_hits_total_beyond_one_page() -> None:
    body = search_body(100, cursor="100", hitsTotal=2345)
    assert Bluesky.parse([URL], body) == {URL: 2345}


def test_hits_total_null_falls_back_to_posts() -> None:
    assert Bluesky.parse([URL], search_body(4, hitsTotal=None)) == {URL: 4}


def test_rounded_hits_total_never_goes_under_the_posts_in_hand() -> None:
    assert Bluesky.parse([URL], search_body(5, hitsTotal=3)) == {URL: 5}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"error":"AuthenticationRequired","message":"Authentication Required"}',
        b'{"error":"InvalidRequest","message":"Error: Params must have \\"q\\""}',
        b'{"error":"ExpiredToken","message":"Token has expired"}',
        b"{}",
        b'{"posts":null}',
        b'{"posts":{}}',
        b'{"posts":"3"}',
        b'{"posts":[1,2]}',
        b'{"posts":[null]}',
        b'{"hitsTotal":5}',  # missing posts
        b'{"posts":[],"hitsTotal":"5"}',  # count as a string
        b'{"posts":[],"hitsTotal":5.5}',
        b'{"posts":[],"hitsTotal":true}',
        b'{"posts":[],"hitsTotal":-1}',
        b'{"posts":[],"hitsTotal":1000000000001}',  # absurd
        b'{"posts":[],"hitsTotal":NaN}',
        search_body(2)[:-5],  # truncated
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Bluesky, raw, [URL])


def test_parse_wants_one_url() -> None:
    with pytest.raises(ParseError):
        Bluesky.parse([URL, URL + "/x"], search_body(1))


# --- property tests ---


_json = json_values(st.sampled_from(["posts", "hitsTotal", "error", "x"]), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["posts", "hitsTotal", "cursor", "error"]), _json) | _json)
def test_parse_arbitrary_json(data: object) -> None:
    assert_counts_or_parse_error(Bluesky, json.dumps(data).encode(), [URL])


@given(st.text(), st.binary())
def test_jwt_expiry_arbitrary(head: str, payload: bytes) -> None:
    exp = jwt_expiry(f"{head}.{b64(payload)}.sig")
    assert exp is None or isinstance(exp, float)
    assert jwt_expiry(head) is None or head.count(".") == 2


# --- the executor against the fake over a real socket ---


SESSION = "/xrpc/com.atproto.server.createSession"
SEARCH = "/xrpc/app.bsky.feed.searchPosts"


async def test_executor_counts_and_where_credentials_travel(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream
) -> None:
    few, many = "https://example.com/few", "https://example.com/many"
    fake_upstream.set_count("bluesky", few, 7)
    fake_upstream.set_count("bluesky", many, 250)
    credentials = {"handle": fake_bluesky.HANDLE, "app_password": fake_bluesky.APP_PASSWORD}
    async with open_executor(
        settings_for(Bluesky, fake_upstream, make_settings, **credentials)
    ) as executor:
        first = await executor.run(Bluesky, [few])
        second = await executor.run(Bluesky, [many])
    assert first.errors == {} and second.errors == {}
    assert first.counts == {few: 7}
    assert second.counts == {many: 250}  # hitsTotal, beyond the 100 posts of the page
    session, *searches = fake_upstream.calls("bluesky")
    assert (session.method, session.path, session.params) == ("POST", SESSION, [])
    assert json.loads(session.body) == {
        "identifier": fake_bluesky.HANDLE,
        "password": fake_bluesky.APP_PASSWORD,
    }
    assert "authorization" not in dict(session.headers)
    assert [c.path for c in searches] == [SEARCH, SEARCH]
    for call, url in zip(searches, (few, many), strict=True):
        assert call.method == "GET"
        assert call.params == [("q", url), ("url", url), ("limit", "100")]
        assert dict(call.headers)["authorization"].startswith("Bearer ")
        # The app password goes to createSession only: never in a search's query, headers, body.
        assert fake_bluesky.APP_PASSWORD not in repr(call)
        assert "abcd-3fgh%2Fijk%2Bmnop" not in repr(call)
