"""Reddit provider: token step, request building, the pure parser, and the executor over OAuth."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import Settings
from aggregator.fetch import Executor, FetchOutcome
from providers.base import NetworkStatus, Observation, ParseError, Problem
from providers.reddit import Reddit
from providers.registry import discover
from tests.fakes import reddit as fake_reddit
from tests.fakeupstream import FakeUpstream, Fault

SettingsFactory = Callable[..., Settings]
URL = "http://heise.de"
BASE = "http://127.0.0.1:9000"
CREDS = {"client_id": "cid", "client_secret": "csecret"}
# The reference's sample Listing, verbatim but for the elided permalink.
SAMPLE = (
    b'{"kind":"Listing","data":{"modhash":"","children":[{"kind":"t3","data":{"subreddit":'
    b'"worldnews","score":1,"ups":1,"num_comments":1,"url":"http://heise.de","permalink":'
    b'"/r/worldnews/comments/x/"}}],"after":null,"before":null}}'
)
TOKEN_BODY = b'{"access_token":"tok-123","token_type":"bearer","expires_in":86400,"scope":"*"}'


def listing(*links: dict[str, Any]) -> bytes:
    children = [{"kind": "t3", "data": d} for d in links]
    return json.dumps({"kind": "Listing", "data": {"children": children}}).encode()


def parse(body: bytes) -> Observation:
    result = Reddit.parse([URL], body)[URL]
    assert isinstance(result, Observation)
    return result


# --- declared data and requests ---


def test_declared_data() -> None:
    assert Reddit.name == "reddit"
    assert Reddit.status is NetworkStatus.LIVE
    assert Reddit.status_since is None
    assert Reddit.docs_url and Reddit.docs_url.startswith("https://www.reddit.com/dev/api")
    assert Reddit.batch_size == 1
    assert Reddit.credentials == ("client_id", "client_secret")
    assert Reddit.enabled_by_default


def test_token_request() -> None:
    req = Reddit.token_request(None, CREDS)
    assert req is not None
    assert (req.method, req.url) == ("POST", "https://www.reddit.com/api/v1/access_token")
    assert req.form == {"grant_type": "client_credentials"}
    assert req.basic_auth == ("cid", "csecret")
    # The secret travels only as Basic auth, never in the URL, query or body.
    assert not req.params and req.json is None and "User-Agent" not in req.headers


def test_token_request_without_credentials_is_none() -> None:
    assert Reddit.token_request(None, {}) is None
    assert Reddit.token_request(None, {"client_id": "cid"}) is None


def test_build_request() -> None:
    req = Reddit.build_request([URL], None, {**CREDS, "token": "tok"})
    assert (req.method, req.url) == ("GET", "https://oauth.reddit.com/api/info")
    assert list(req.params) == [("url", URL)]
    assert req.headers == {"Authorization": "bearer tok"}
    assert req.basic_auth is None and req.form is None


def test_one_base_url_moves_both_endpoints() -> None:
    token_req = Reddit.token_request(BASE, CREDS)
    assert token_req is not None
    assert token_req.url == f"{BASE}/api/v1/access_token"
    assert Reddit.build_request([URL], BASE, {"token": "t"}).url == f"{BASE}/api/info"


def test_build_request_refuses_batches_and_missing_token() -> None:
    with pytest.raises(ValueError):
        Reddit.build_request([URL, URL + "/x"], None, {"token": "t"})
    with pytest.raises(ValueError):
        Reddit.build_request([], None, {"token": "t"})
    with pytest.raises(ValueError, match="client_id"):
        Reddit.build_request([URL], None, CREDS)


# --- token answers ---


def test_parse_token() -> None:
    token = Reddit.parse_token(TOKEN_BODY)
    assert (token.value, token.expires_in) == ("tok-123", 86400.0)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"token_type":"bearer","expires_in":86400}',
        b'{"access_token":"tok","token_type":"bearer"}',
        b'{"access_token":"","expires_in":86400}',
        b'{"access_token":5,"expires_in":86400}',
        b'{"access_token":"tok","expires_in":"86400"}',
        b'{"access_token":"tok","expires_in":true}',
        b'{"access_token":"tok","expires_in":0}',
        b'{"access_token":"tok","expires_in":-5}',
        b'{"access_token":"tok","expires_in":1e300}',
        b'{"error":"invalid_grant"}',
        b'{"message":"Unauthorized","error":401}',
        b"[]",
        b"<html>oops</html>",
        b'{"access_token":"tok","expires_in":86',
        b"",
    ],
)
def test_parse_token_rejects(raw: bytes) -> None:
    with pytest.raises(ParseError, match="reddit"):
        Reddit.parse_token(raw)


def test_parse_token_error_names_reddits_error() -> None:
    with pytest.raises(ParseError, match="invalid_grant"):
        Reddit.parse_token(b'{"error":"invalid_grant"}')


# --- listings ---


def test_reference_sample() -> None:
    assert parse(SAMPLE) == Observation(1, parts={"score": 1, "comments": 1})


def test_sums_over_submissions() -> None:
    body = listing(
        {"subreddit": "a", "score": 120, "num_comments": 40},
        {"subreddit": "b", "score": 7, "num_comments": 2},
    )
    assert parse(body) == Observation(127, parts={"score": 127, "comments": 42})


def test_empty_children_is_zero() -> None:
    body = b'{"kind":"Listing","data":{"modhash":"","children":[],"after":null,"before":null}}'
    assert parse(body) == Observation(0, parts={"score": 0, "comments": 0})


def test_downvoted_submission_counts_zero() -> None:
    body = listing({"score": -4, "num_comments": 3}, {"score": 10, "num_comments": 0})
    assert parse(body) == Observation(10, parts={"score": 10, "comments": 3})


def test_other_kinds_are_skipped() -> None:
    body = json.dumps(
        {
            "kind": "Listing",
            "data": {
                "children": [
                    {"kind": "t3", "data": {"score": 5, "num_comments": 1}},
                    {"kind": "t1", "data": {"score": 999, "body": "a comment"}},
                ]
            },
        }
    ).encode()
    assert parse(body).count == 5


@pytest.mark.parametrize(
    "raw",
    [
        b'{"message": "Unauthorized", "error": 401}',
        b'{"message": "Too Many Requests", "error": 429}',
        b'{"error": "invalid_token"}',
        b"<html>oops</html>",
        b"<!doctype html><title>Blocked</title>",
        b"",
        b"null",
        b"[]",
        b'"Listing"',
        b'{"kind":"Listing"}',
        b'{"kind":"Listing","data":{}}',
        b'{"kind":"Listing","data":{"children":null}}',
        b'{"kind":"Listing","data":{"children":{}}}',
        b'{"kind":"Listing","data":[]}',
        b'{"kind":"Listing","data":{"children":[5]}}',
        b'{"kind":"Listing","data":{"children":[{"kind":"t3"}]}}',
        b'{"kind":"Listing","data":{"children":[{"kind":"t3","data":"x"}]}}',
        SAMPLE[:-7],  # truncated
        listing({"num_comments": 1}),  # missing score
        listing({"score": 1}),  # missing num_comments
        listing({"score": None, "num_comments": 1}),
        listing({"score": "12", "num_comments": 1}),  # count as a string
        listing({"score": 12, "num_comments": "1"}),
        listing({"score": 1.5, "num_comments": 1}),
        listing({"score": True, "num_comments": 1}),
        listing({"score": 1, "num_comments": -1}),
        listing({"score": 10**12 + 1, "num_comments": 1}),  # absurd
        listing({"score": -(10**13), "num_comments": 1}),  # absurdly negative
        listing({"score": 10**12, "num_comments": 0}, {"score": 1, "num_comments": 0}),
        b'{"kind":"Listing","data":{"children":[{"kind":"t3","data":{"score":NaN}}]}}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError, match="reddit"):
        Reddit.parse([URL], raw)


def test_parse_wants_one_url() -> None:
    with pytest.raises(ParseError):
        Reddit.parse([URL, URL + "/x"], SAMPLE)


# --- rate limits ---


def test_429_waits_for_ratelimit_reset() -> None:
    found = Reddit.problem(429, {"x-ratelimit-reset": "42"}, b"")
    assert found == Problem("throttled", "HTTP 429 Too Many Requests", 42.0)


def test_429_prefers_retry_after() -> None:
    found = Reddit.problem(429, {"retry-after": "5", "x-ratelimit-reset": "42"}, b"")
    assert found is not None and found.retry_after == 5.0


def test_used_up_window_on_a_200_says_throttled() -> None:
    headers = {"x-ratelimit-remaining": "0.0", "x-ratelimit-reset": "30"}
    found = Reddit.problem(200, headers, SAMPLE)
    assert found is not None and (found.kind, found.retry_after) == ("throttled", 30.0)
    assert Reddit.problem(200, {"x-ratelimit-remaining": "57.0"}, SAMPLE) is None
    assert Reddit.problem(200, {"x-ratelimit-remaining": "nan"}, SAMPLE) is None
    assert Reddit.problem(500, {"x-ratelimit-remaining": "0"}, b"") is None


def test_discovered_through_entry_point() -> None:
    providers = discover()
    if not providers:
        pytest.skip("the flares package is not installed (no entry points)")
    assert providers["reddit"] is Reddit


# --- property tests ---


def _check(raw: bytes) -> None:
    try:
        result = Reddit.parse([URL], raw)
    except ParseError:
        return
    assert set(result) == {URL}
    value = result[URL]
    assert isinstance(value, Observation)
    assert type(value.count) is int and 0 <= value.count <= 10**12
    assert all(type(v) is int and 0 <= v <= 10**12 for v in value.parts.values())


@given(st.binary())
def test_parse_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["score", "num_comments", "kind", "x"]), children)
    ),
    max_leaves=8,
)
_child = st.fixed_dictionaries(
    {"kind": st.sampled_from(["t3", "t1"]) | _json},
    optional={"data": st.dictionaries(st.sampled_from(["score", "num_comments"]), _json)},
)


@given(st.lists(_child, max_size=4) | _json)
def test_parse_arbitrary_listings(children: object) -> None:
    _check(json.dumps({"kind": "Listing", "data": {"children": children}}).encode())


@given(st.binary())
def test_parse_token_arbitrary_bytes(raw: bytes) -> None:
    try:
        token = Reddit.parse_token(raw)
    except ParseError:
        return
    assert token.value and token.expires_in > 0


# --- the executor against the fake over a real socket ---


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


UA = "linux:flares-test:0.1 (by /u/flares)"


def settings_for(make_settings: SettingsFactory, base_url: str, **extra: Any) -> Settings:
    conf = {
        "base_url": base_url,
        "timeout": 2.0,
        "client_id": fake_reddit.CLIENT_ID,
        "client_secret": fake_reddit.CLIENT_SECRET,
        "user_agent": UA,
        **extra,
    }
    return make_settings(providers={"reddit": conf})


def token_calls(fake: FakeUpstream) -> list[str]:
    return [c.path for c in fake.calls("reddit") if c.path == "/api/v1/access_token"]


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
    url = "https://example.com/post"
    fake_upstream.set_count("reddit", url, 25)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    outcome = await executor.run(Reddit, [url])
    assert outcome.errors == {}
    # 25 split as 13 + 12, each submission with score // 3 comments.
    assert outcome.observations[url] == Observation(25, parts={"score": 25, "comments": 8})
    token_call, info_call = fake_upstream.calls("reddit")
    basic = base64.b64encode(f"{fake_reddit.CLIENT_ID}:{fake_reddit.CLIENT_SECRET}".encode())
    token_headers = dict(token_call.headers)
    assert token_call.method == "POST"
    assert token_headers["authorization"] == f"Basic {basic.decode()}"
    assert token_call.body == b"grant_type=client_credentials"
    assert token_call.params == []
    info_headers = dict(info_call.headers)
    assert (info_call.method, info_call.path) == ("GET", "/api/info")
    assert info_call.params == [("url", url)]
    assert info_headers["authorization"].startswith("bearer fake-reddit-token-")
    assert fake_reddit.CLIENT_SECRET not in repr(info_call)
    # The descriptive User-Agent of the settings goes with both calls.
    assert token_headers["user-agent"] == info_headers["user-agent"] == UA


async def test_executor_zero_is_a_count(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    url = "https://example.com/nobody"
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    outcome = await executor.run(Reddit, [url])
    assert outcome.counts == {url: 0} and outcome.errors == {}


async def test_executor_reuses_the_token(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    urls = [f"https://example.com/{i}" for i in range(4)]
    for i, url in enumerate(urls):
        fake_upstream.set_count("reddit", url, i * 10)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    for url in urls:
        outcome = await executor.run(Reddit, [url])
        assert outcome.errors == {}
        assert outcome.counts == {url: urls.index(url) * 10}
    assert len(token_calls(fake_upstream)) == 1
    tokens = {dict(c.headers)["authorization"] for c in fake_upstream.calls("reddit")[1:]}
    assert len(tokens) == 1


async def test_executor_one_token_for_concurrent_batches(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    urls = [f"https://example.com/{i}" for i in range(4)]
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    outcome = await executor.run(Reddit, urls)
    assert outcome.counts == dict.fromkeys(urls, 0)
    assert len(token_calls(fake_upstream)) == 1


async def test_executor_renews_a_revoked_token(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    url = "https://example.com/again"
    fake_upstream.set_count("reddit", url, 3)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    assert (await executor.run(Reddit, [url])).counts == {url: 3}
    fake_reddit.revoke_tokens()
    outcome = await executor.run(Reddit, [url])
    assert outcome.counts == {url: 3} and outcome.errors == {}
    paths = [c.path for c in fake_upstream.calls("reddit")]
    # One 401 with the revoked token, one renewal, one retry: never a second failure.
    token, info = "/api/v1/access_token", "/api/info"
    assert paths == [token, info, info, token, info]


async def test_executor_rejected_credentials(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    wrong = "wr0ng/secret+key=&9"
    settings = settings_for(make_settings, fake_upstream.base_url, client_secret=wrong)
    outcome = await Executor(client, settings).run(Reddit, ["https://example.com/a"])
    assert outcome.problem is not None and outcome.problem.kind == "rejected"
    assert {(e.kind, e.status) for e in outcome.errors.values()} == {("rejected", 401)}
    # Nothing is asked of the API without a token.
    assert [c.path for c in fake_upstream.calls("reddit")] == ["/api/v1/access_token"]
    assert_no_secret(outcome, wrong)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("garbage"),
        Fault("answer", status=200, body=b'{"message": "Unauthorized", "error": 401}'),
    ],
    ids=["500", "garbage", "error-body"],
)
async def test_no_secret_in_error_messages(
    fault: Fault,
    make_settings: SettingsFactory,
    fake_upstream: FakeUpstream,
    client: httpx.AsyncClient,
) -> None:
    fake_upstream.set_fault("reddit", fault)
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    outcome = await executor.run(Reddit, ["https://example.com/a", "https://example.com/b"])
    assert outcome.counts == {}
    assert_no_secret(outcome, fake_reddit.CLIENT_SECRET, fake_reddit.CLIENT_ID)


async def test_no_secret_or_token_when_the_api_fails(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    url = "https://example.com/a"
    executor = Executor(client, settings_for(make_settings, fake_upstream.base_url))
    assert (await executor.run(Reddit, [url])).errors == {}
    token = dict(fake_upstream.calls("reddit")[1].headers)["authorization"].split()[1]
    # The token is cached now, so these faults hit /api/info only.
    for fault in (Fault("status", status=500), Fault("garbage")):
        fake_upstream.set_fault("reddit", fault)
        outcome = await executor.run(Reddit, [url])
        assert outcome.counts == {}
        assert_no_secret(outcome, fake_reddit.CLIENT_SECRET, token)
