"""Reddit provider: token step, request building, the pure parser, and the executor over OAuth."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import Observation, ParseError, Problem
from providers.reddit import Reddit
from tests.fakes import reddit as fake_reddit
from tests.fakeupstream import FakeUpstream
from tests.provider_checks import (
    SettingsFactory,
    assert_counts_or_parse_error,
    json_values,
    parse_error,
    run,
    settings_for,
    token_parse_error,
)

URL = "http://heise.de"
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


def test_token_request() -> None:
    req = Reddit.token_request(None, CREDS)
    assert req is not None
    assert (req.method, req.url) == ("POST", "https://www.reddit.com/api/v1/access_token")
    assert req.form == {"grant_type": "client_credentials"}
    assert req.basic_auth == ("cid", "csecret")
    # The secret travels only as Basic auth, never in the URL, query or body.
    assert not req.params and req.json is None and "User-Agent" not in req.headers


def test_build_request() -> None:
    req = Reddit.build_request([URL], None, {**CREDS, "token": "tok"})
    assert (req.method, req.url) == ("GET", "https://oauth.reddit.com/api/info")
    assert list(req.params) == [("url", URL)]
    assert req.headers == {"Authorization": "bearer tok"}
    assert req.basic_auth is None and req.form is None


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
        b'{"access_token":"tok","expires_in":86',
    ],
)
def test_parse_token_rejects(raw: bytes) -> None:
    token_parse_error(Reddit, raw)


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
        b"<!doctype html><title>Blocked</title>",
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
    parse_error(Reddit, raw, [URL])


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


# --- property tests ---


_json = json_values(st.sampled_from(["score", "num_comments", "kind", "x"]), max_leaves=8)
_child = st.fixed_dictionaries(
    {"kind": st.sampled_from(["t3", "t1"]) | _json},
    optional={"data": st.dictionaries(st.sampled_from(["score", "num_comments"]), _json)},
)


@given(st.lists(_child, max_size=4) | _json)
def test_parse_arbitrary_listings(children: object) -> None:
    raw = json.dumps({"kind": "Listing", "data": {"children": children}}).encode()
    assert_counts_or_parse_error(Reddit, raw, [URL])


# --- the executor against the fake over a real socket ---


UA = "linux:flares-test:0.1 (by /u/flares)"


async def test_executor_counts_and_where_credentials_travel(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream
) -> None:
    url = "https://example.com/post"
    fake_upstream.set_count("reddit", url, 25)
    credentials = {"client_id": fake_reddit.CLIENT_ID, "client_secret": fake_reddit.CLIENT_SECRET}
    settings = settings_for(Reddit, fake_upstream, make_settings, **credentials, user_agent=UA)
    outcome = await run(Reddit, settings, [url])
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
