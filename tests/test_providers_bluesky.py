"""Bluesky provider: session step, JWT expiry, search request, the pure parser, the executor."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import Settings
from aggregator.fetch import Executor, FetchOutcome
from providers.base import NetworkStatus, ParseError
from providers.bluesky import FALLBACK_LIFETIME, MAX_LIFETIME, Bluesky, jwt_expiry
from providers.registry import discover
from tests.fakes import bluesky as fake_bluesky
from tests.fakeupstream import FakeUpstream, Fault

SettingsFactory = Callable[..., Settings]
URL = "https://example.com/article"
BASE = "http://127.0.0.1:9000"
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


def test_declared_data() -> None:
    assert Bluesky.name == "bluesky"
    assert Bluesky.status is NetworkStatus.LIVE
    assert Bluesky.status_since is None
    assert Bluesky.docs_url and "search-posts" in Bluesky.docs_url
    assert Bluesky.batch_size == 1
    assert Bluesky.credentials == ("handle", "app_password")
    assert Bluesky.enabled_by_default is False
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


def test_token_request_without_credentials_is_none() -> None:
    assert Bluesky.token_request(None, {}) is None
    assert Bluesky.token_request(None, {"handle": "me.bsky.social"}) is None


def test_build_request() -> None:
    req = Bluesky.build_request([URL], None, {**CREDS, "token": "a.b.c"})
    assert (req.method, req.url) == ("GET", "https://bsky.social/xrpc/app.bsky.feed.searchPosts")
    assert list(req.params) == [("q", URL), ("url", URL), ("limit", "100")]
    assert req.headers == {"Authorization": "Bearer a.b.c"}
    # The app password stays in the session step.
    assert CREDS["app_password"] not in repr(req)


def test_one_base_url_moves_both_endpoints() -> None:
    session = Bluesky.token_request(BASE, CREDS)
    assert session is not None
    assert session.url == f"{BASE}/xrpc/com.atproto.server.createSession"
    assert Bluesky.build_request([URL], BASE, {"token": "t"}).url == (
        f"{BASE}/xrpc/app.bsky.feed.searchPosts"
    )


def test_build_request_refuses_batches_and_missing_token() -> None:
    with pytest.raises(ValueError):
        Bluesky.build_request([URL, URL + "/x"], None, {"token": "t"})
    with pytest.raises(ValueError):
        Bluesky.build_request([], None, {"token": "t"})
    with pytest.raises(ValueError, match="app_password"):
        Bluesky.build_request([URL], None, CREDS)


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
        b"[]",
        b"<html>oops</html>",
        b'{"accessJwt":"a.b.c","refre',
        b"",
    ],
)
def test_parse_token_rejects(raw: bytes) -> None:
    with pytest.raises(ParseError, match="bluesky"):
        Bluesky.parse_token(raw)


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
        b"<html>oops</html>",
        b"",
        b"null",
        b"[]",
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
    with pytest.raises(ParseError, match="bluesky"):
        Bluesky.parse([URL], raw)


def test_parse_wants_one_url() -> None:
    with pytest.raises(ParseError):
        Bluesky.parse([URL, URL + "/x"], search_body(1))


def test_discovered_through_entry_point() -> None:
    providers = discover()
    if not providers:
        pytest.skip("the flares package is not installed (no entry points)")
    assert providers["bluesky"] is Bluesky


# --- property tests ---


def _check(raw: bytes) -> None:
    try:
        result = Bluesky.parse([URL], raw)
    except ParseError:
        return
    assert set(result) == {URL}
    assert type(result[URL]) is int and 0 <= result[URL] <= 10**12


@given(st.binary())
def test_parse_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["posts", "hitsTotal", "error", "x"]), children)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["posts", "hitsTotal", "cursor", "error"]), _json) | _json)
def test_parse_arbitrary_json(data: object) -> None:
    _check(json.dumps(data).encode())


@given(st.binary())
def test_parse_token_arbitrary_bytes(raw: bytes) -> None:
    try:
        token = Bluesky.parse_token(raw)
    except ParseError:
        return
    assert token.value and 0 <= token.expires_in <= MAX_LIFETIME


@given(st.text(), st.binary())
def test_jwt_expiry_arbitrary(head: str, payload: bytes) -> None:
    exp = jwt_expiry(f"{head}.{b64(payload)}.sig")
    assert exp is None or isinstance(exp, float)
    assert jwt_expiry(head) is None or head.count(".") == 2


# --- the executor against the fake over a real socket ---


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def settings_for(make_settings: SettingsFactory, base_url: str, **extra: Any) -> Settings:
    conf = {
        "base_url": base_url,
        "timeout": 2.0,
        "handle": fake_bluesky.HANDLE,
        "app_password": fake_bluesky.APP_PASSWORD,
        **extra,
    }
    return make_settings(providers={"bluesky": conf})


SESSION = "/xrpc/com.atproto.server.createSession"
SEARCH = "/xrpc/app.bsky.feed.searchPosts"


def session_calls(fake: FakeUpstream) -> list[str]:
    return [c.path for c in fake.calls("bluesky") if c.path == SESSION]


def assert_no_secret(outcome: FetchOutcome, *secrets: str) -> None:
    assert outcome.errors
    for error in outcome.errors.values():
        for secret in secrets:
            assert secret not in error.message
    if outcome.problem is not None:
        assert all(secret not in outcome.problem.message for secret in secrets)


async def test_executor_counts_and_where_credentials_travel(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    few, many = "https://example.com/few", "https://example.com/many"
    fake_upstream.set_count("bluesky", few, 7)
    fake_upstream.set_count("bluesky", many, 250)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
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


async def test_executor_reuses_the_session(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    urls = [f"https://example.com/{i}" for i in range(4)]
    for i, url in enumerate(urls):
        fake_upstream.set_count("bluesky", url, i)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    for i, url in enumerate(urls):
        outcome = await executor.run(Bluesky, [url])
        assert outcome.counts == {url: i} and outcome.errors == {}
    # createSession is rate limited per account (atproto): one session serves every search.
    assert len(session_calls(fake_upstream)) == 1


async def test_executor_renews_a_revoked_session(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    url = "https://example.com/again"
    fake_upstream.set_count("bluesky", url, 2)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    assert (await executor.run(Bluesky, [url])).counts == {url: 2}
    fake_bluesky.revoke_tokens()
    outcome = await executor.run(Bluesky, [url])
    assert outcome.counts == {url: 2} and outcome.errors == {}
    paths = [c.path for c in fake_upstream.calls("bluesky")]
    assert paths == [SESSION, SEARCH, SEARCH, SESSION, SEARCH]


async def test_executor_rejected_credentials(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    wrong = "wxyz-9999/zz+q"
    settings = settings_for(make_settings, fake_upstream.base_url, app_password=wrong)
    outcome = await Executor(client, settings).run(Bluesky, ["https://example.com/a"])
    assert outcome.problem is not None and outcome.problem.kind == "rejected"
    assert {(e.kind, e.status) for e in outcome.errors.values()} == {("rejected", 401)}
    assert [c.path for c in fake_upstream.calls("bluesky")] == [SESSION]
    assert_no_secret(outcome, wrong)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("garbage"),
        Fault("answer", status=200, body=b'{"error":"InternalServerError","message":"x"}'),
    ],
    ids=["500", "garbage", "error-body"],
)
async def test_no_secret_in_session_error_messages(
    fault: Fault,
    make_settings: SettingsFactory,
    fake_upstream: FakeUpstream,
    client: httpx.AsyncClient,
) -> None:
    fake_upstream.set_fault("bluesky", fault)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    outcome = await executor.run(Bluesky, ["https://example.com/a", "https://example.com/b"])
    assert outcome.counts == {}
    assert_no_secret(outcome, fake_bluesky.APP_PASSWORD, fake_bluesky.HANDLE)


async def test_no_secret_or_token_when_search_fails(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    url = "https://example.com/a"
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    assert (await executor.run(Bluesky, [url])).errors == {}
    token = dict(fake_upstream.calls("bluesky")[1].headers)["authorization"].split()[1]
    # The session is cached now, so these faults hit searchPosts only.
    for fault in (Fault("status", status=500), Fault("garbage")):
        fake_upstream.set_fault("bluesky", fault)
        outcome = await executor.run(Bluesky, [url])
        assert outcome.counts == {}
        assert_no_secret(outcome, fake_bluesky.APP_PASSWORD, token)
