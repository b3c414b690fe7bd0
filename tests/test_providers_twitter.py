"""Twitter/X provider: v2 day buckets and legacy count.json, problems, the executor against the
fake X API, and the store's day arithmetic (each day counted once)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import Settings
from aggregator.store import Store
from providers.base import MAX_COUNT, Observation, ParseError, Problem
from providers.twitter import Twitter
from tests.fakes.twitter import spread
from tests.fakeupstream import FakeUpstream, Fault
from tests.provider_checks import (
    SettingsFactory,
    assert_counts_or_parse_error,
    assert_outcome_holds_no_secret,
    json_values,
    open_executor,
    parse_error,
    run,
    settings_for,
)

A = "https://a.example/post?x=1&y=2"
# Characters that URL encoding changes, so both the raw and the encoded form are checked.
TOKEN = "AAAA%2Fs3cr/t+key=&42"
CONFIG = {"bearer_token": TOKEN}
# The v2 sample of the X docs (granularity=day), verbatim.
SAMPLE_V2 = (
    b'{"data":[{"end":"2024-01-16T00:00:00.000Z","start":"2024-01-15T00:00:00.000Z",'
    b'"tweet_count":5},{"end":"2024-01-17T00:00:00.000Z","start":"2024-01-16T00:00:00.000Z",'
    b'"tweet_count":3},{"end":"2024-01-18T00:00:00.000Z","start":"2024-01-17T00:00:00.000Z",'
    b'"tweet_count":8}],"meta":{"total_tweet_count":16}}'
)
SAMPLE_LEGACY = b'{"count":13,"url":"http:\\/\\/www.heise.de\\/"}'
UNAUTHORIZED = b'{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}'
CLIENT_FORBIDDEN = json.dumps(
    {
        "client_id": "123",
        "detail": "When authenticating requests to the X API v2 endpoints, you must use keys and "
        "tokens from an App that is attached to a Project.",
        "registration_url": "https://developer.x.com/en/portal/projects-and-apps",
        "required_enrollment": "Appropriate Level of API Access",
        "reason": "client-not-enrolled",
        "title": "Client Forbidden",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    }
).encode()
TOO_MANY = (
    b'{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}'
)


def v2(*buckets: tuple[str, Any], total: Any = None) -> bytes:
    """A v2 answer from (start, tweet_count) pairs; meta's total is their sum when valid."""
    data = [{"end": "2026-01-01T00:00:00.000Z", "start": s, "tweet_count": n} for s, n in buckets]
    counts = [n for _, n in buckets]
    valid = all(type(n) is int and 0 <= n <= MAX_COUNT for n in counts)
    if total is None and valid and sum(counts) <= MAX_COUNT:
        total = sum(counts)
    meta = {} if total is None else {"total_tweet_count": total}
    return json.dumps({"data": data, "meta": meta}).encode()


def parse(raw: bytes, url: str = A) -> int | Observation:
    return Twitter.parse([url], raw)[url]


# --- declared data and requests ---


def test_legacy_endpoint_and_its_retirement() -> None:
    assert Twitter.legacy_endpoint == "https://cdn.api.twitter.com/1/urls/count.json"
    assert "2015-11-20" in (Twitter.__doc__ or "")


def test_required_settings_by_mode() -> None:
    assert Twitter.required_settings({}) == ("bearer_token",)
    assert Twitter.required_settings({"mode": "v2"}) == ("bearer_token",)
    assert Twitter.required_settings({"mode": "legacy"}) == ()


def test_build_request_v2() -> None:
    req = Twitter.build_request([A], None, CONFIG)
    assert req.method == "GET"
    assert req.url == "https://api.x.com/2/tweets/counts/recent"
    assert list(req.params) == [("query", f'url:"{A}"'), ("granularity", "day")]
    # The token travels only in the Authorization header.
    assert req.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert (req.form, req.json, req.basic_auth) == (None, None, None)
    assert Twitter.build_request([A], None, {**CONFIG, "mode": "v2"}) == req


def test_build_request_escapes_a_quote() -> None:
    req = Twitter.build_request(['https://a.example/"x"'], None, CONFIG)
    assert dict(req.params)["query"] == 'url:"https://a.example/%22x%22"'


def test_build_request_legacy() -> None:
    req = Twitter.build_request([A], None, {**CONFIG, "mode": "legacy"})
    assert req.url == "https://cdn.api.twitter.com/1/urls/count.json"
    assert list(req.params) == [("url", A)]
    # A token that happens to be set never goes to the legacy host.
    assert req.headers == {}


@pytest.mark.parametrize("mode", ["Legacy", "v1", "counts", "v2 "])
def test_build_request_unknown_mode(mode: str) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        Twitter.build_request([A], None, {**CONFIG, "mode": mode})


def test_build_request_needs_token() -> None:
    with pytest.raises(ValueError, match="bearer_token"):
        Twitter.build_request([A], None, {})


# --- parsing v2 ---


def test_v2_reference_sample() -> None:
    days = {"2024-01-15": 5, "2024-01-16": 3, "2024-01-17": 8}
    assert parse(SAMPLE_V2) == Observation(16, days=days)


def test_v2_partial_first_bucket_is_left_out() -> None:
    raw = v2(
        ("2026-11-17T14:23:11.000Z", 4),  # the window starts 7 days ago to the second
        ("2026-11-18T00:00:00.000Z", 1),
        ("2026-11-24T00:00:00.000Z", 2),  # today so far: a later fetch replaces it
    )
    assert parse(raw) == Observation(3, days={"2026-11-18": 1, "2026-11-24": 2})


def test_v2_zero_buckets_are_kept_as_days() -> None:
    raw = v2(("2026-11-23T00:00:00Z", 0), ("2026-11-24T00:00:00.000Z", 0))
    assert parse(raw) == Observation(0, days={"2026-11-23": 0, "2026-11-24": 0})


@pytest.mark.parametrize(
    "raw",
    [
        b'{"meta":{"total_tweet_count":0}}',  # X leaves data out when nothing matched
        b'{"meta":{}}',
        b'{"data":[],"meta":{"total_tweet_count":0}}',
        b'{"data":[]}',
    ],
)
def test_v2_nothing_in_the_window_is_zero(raw: bytes) -> None:
    assert parse(raw) == Observation(0)


def test_v2_meta_total_is_not_the_count() -> None:
    # The count is the sum of the whole days; meta's total also covers the partial first day.
    raw = v2(("2026-11-17T14:23:11.000Z", 4), ("2026-11-18T00:00:00.000Z", 1), total=5)
    assert parse(raw) == Observation(1, days={"2026-11-18": 1})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"meta":{"total_tweet_count":5}}', "no data"),
        (b'{"meta":{"total_tweet_count":-1}}', "outside"),
        (b'{"meta":[]}', "meta is not an object"),
        (b'{"data":{"tweet_count":3}}', "data is not a list"),
        (b'{"data":[3]}', "not an object"),
        (v2(("2026-11-24T00:00:00.000Z", -1)), "outside"),
        (v2(("2026-11-24T00:00:00.000Z", MAX_COUNT + 1)), "outside"),
        (v2(("2026-11-24T00:00:00.000Z", "7")), "not an integer"),  # counts are numbers
        (v2(("2026-11-24T00:00:00.000Z", 7.0)), "not an integer"),
        (v2(("2026-11-24T00:00:00.000Z", None)), "not an integer"),
        (v2(("2026-11-24T00:00:00.000Z", True)), "not an integer"),
        (v2(("2026-11-24", 7)), "not a UTC time"),
        (v2(("2026-11-24T00:00:00+01:00", 7)), "not a UTC time"),
        (v2(("2026-02-30T00:00:00.000Z", 7)), "not a valid time"),
        (v2(("2026-11-24T25:00:00.000Z", 7)), "not a valid time"),
        (v2((None, 7)), "not a UTC time"),  # type: ignore[arg-type]
        (v2(("2026-11-24T00:00:00.000Z", 1), ("2026-11-24T01:00:00.000Z", 1)), "two buckets"),
        (
            v2(
                ("2026-11-23T00:00:00.000Z", MAX_COUNT),
                ("2026-11-24T00:00:00.000Z", MAX_COUNT),
            ),
            "sum to",
        ),
    ],
)
def test_v2_bad_bodies_raise_parse_error(raw: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        parse(raw)


# --- parsing legacy count.json ---


def test_legacy_reference_shape() -> None:
    assert parse(SAMPLE_LEGACY) == 13
    assert parse(b'{"count":0,"url":"https://a.example/"}') == 0
    assert parse(b'{"count":5}') == 5


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"count":-1}', "outside"),
        (b'{"count":1000000000001}', "outside"),
        (b'{"count":"13"}', "not an integer"),
        (b'{"count":13.5}', "not an integer"),
        (b'{"count":null}', "not an integer"),
        (b'{"url":"https://a.example/"}', "neither"),
        (b"{}", "neither"),
    ],
)
def test_legacy_bad_bodies_raise_parse_error(raw: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        parse(raw)


# --- bodies neither format can read ---


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"<html><head><title>Twitter / Over capacity</title></head></html>",
        b'{"data":[{"start":"2026-11-24T00:00:00.000Z","tweet_count":',  # truncated
        b'{"count":1',  # truncated
        b"13",
        # The widget's JSONP form, only sent when a callback is asked for (flares never does).
        b'twttr.receiveCount({"count":13,"url":"http://www.heise.de/"});',
        UNAUTHORIZED,
        CLIENT_FORBIDDEN,
        b'{"errors":[{"code":88,"message":"Rate limit exceeded"}]}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Twitter, raw, [A])


def test_parse_takes_exactly_one_url() -> None:
    with pytest.raises(ParseError, match="exactly one"):
        Twitter.parse([A, A + "2"], SAMPLE_LEGACY)


# --- problems ---


def test_429_waits_until_rate_limit_reset() -> None:
    reset = int(time.time()) + 300
    problem = Twitter.problem(429, {"x-rate-limit-reset": str(reset)}, TOO_MANY)
    assert problem is not None and problem.kind == "throttled"
    assert problem.retry_after is not None and 290 <= problem.retry_after <= 300


def test_429_reset_in_the_past_or_far_future_is_clamped() -> None:
    past = Twitter.problem(429, {"x-rate-limit-reset": "1000"}, TOO_MANY)
    assert past is not None and past.retry_after == 0.0
    future = Twitter.problem(429, {"x-rate-limit-reset": str(time.time() + 10**9)}, TOO_MANY)
    assert future is not None and future.retry_after == 86_400.0


@pytest.mark.parametrize("reset", ["", "soon", "nan", "inf"])
def test_429_without_a_readable_reset_falls_back_to_retry_after(reset: str) -> None:
    headers = {"x-rate-limit-reset": reset, "retry-after": "12"}
    assert Twitter.problem(429, headers, TOO_MANY) == Problem(
        "throttled", "HTTP 429 Too Many Requests", 12.0
    )
    assert Twitter.problem(429, {}, b"") == Problem("throttled", "HTTP 429 Too Many Requests")


def test_429_usage_cap_waits_a_day() -> None:
    body = json.dumps(
        {
            "title": "UsageCapExceeded",
            "detail": "Usage cap exceeded: Monthly product cap",
            "type": "https://api.twitter.com/2/problems/usage-capped",
        }
    ).encode()
    reset = str(int(time.time()) + 60)
    problem = Twitter.problem(429, {"x-rate-limit-reset": reset}, body)
    assert problem == Problem("throttled", "X usage cap exceeded (HTTP 429)", 86_400.0)


@pytest.mark.parametrize(
    ("status", "body", "title"),
    [
        (401, UNAUTHORIZED, "Unauthorized"),
        (403, CLIENT_FORBIDDEN, "Client Forbidden"),
        (401, b'{"errors":[{"code":32,"message":"Could not authenticate you."}]}', "no title"),
    ],
)
def test_401_403_with_x_error_body_is_rejected(status: int, body: bytes, title: str) -> None:
    problem = Twitter.problem(status, {}, body)
    assert problem == Problem("rejected", f"X refused the bearer token (HTTP {status}: {title})")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b"<html>401</html>"),  # a proxy's page, not X
        (403, b""),
        (403, b'{"message":"forbidden"}'),
        (400, UNAUTHORIZED),
        (500, UNAUTHORIZED),
        (200, SAMPLE_V2),
    ],
)
def test_other_answers_are_no_problem(status: int, body: bytes) -> None:
    assert Twitter.problem(status, {}, body) is None


# --- properties ---


_json = json_values(st.text(), max_leaves=12)
_starts = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000Z")) | st.sampled_from(
    ["2026-11-24T00:00:00.000Z", "2026-11-25T00:00:00.000Z"]
)
_bucket = st.fixed_dictionaries(
    {"start": _starts | _json, "tweet_count": st.integers(-5, 2 * MAX_COUNT) | _json}
)
_v2 = st.fixed_dictionaries(
    {},
    optional={
        "data": st.lists(_bucket, max_size=9) | _json,
        "meta": st.fixed_dictionaries({}, optional={"total_tweet_count": _json}) | _json,
        "count": _json,
    },
)


@given(_v2 | _json)
def test_parse_arbitrary_json(data: object) -> None:
    assert_counts_or_parse_error(Twitter, json.dumps(data).encode(), [A])


# --- the executor against the fake X API ---


@pytest.fixture
def settings(fake_upstream: FakeUpstream, make_settings: SettingsFactory) -> Settings:
    return settings_for(Twitter, fake_upstream, make_settings, **CONFIG)


SECRET_FORMS = (TOKEN, "AAAA%252Fs3cr%2Ft%2Bkey%3D%2642", "s3cr/t+key", "s3cr%2Ft", "AAAA%2Fs3cr")


def utc_day(days_ago: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()


async def test_executor_v2_day_buckets_and_token_only_in_header(
    settings: Settings, fake_upstream: FakeUpstream
) -> None:
    urls = ["https://example.com/a", "https://example.com/b?x=1&y=2", "https://example.com/zero"]
    for url, count in zip(urls, (10, 2, 0), strict=True):
        fake_upstream.set_count("twitter", url, count)
    outcome = await run(Twitter, settings, urls)
    assert outcome.errors == {}
    assert outcome.problem is None
    assert outcome.counts == {urls[0]: 10, urls[1]: 2, urls[2]: 0}
    # Spread over the last three UTC days; the window's other days are there with 0.
    days = outcome.observations[urls[0]].days
    assert len(days) == 7
    assert [days[utc_day(n)] for n in (2, 1, 0)] == spread(10) == [3, 3, 4]
    assert sum(days.values()) == 10
    assert outcome.observations[urls[2]] == Observation(0)
    calls = fake_upstream.calls("twitter")
    assert sorted(dict(c.params)["query"] for c in calls) == sorted(f'url:"{u}"' for u in urls)
    for call in calls:
        assert call.path == "/2/tweets/counts/recent"
        headers = dict(call.headers)
        assert headers["authorization"] == f"Bearer {TOKEN}"
        places = [
            *(v for _, v in call.params),
            *(f"{k}: {v}" for k, v in call.headers if k != "authorization"),
            call.path,
            call.body.decode(),
        ]
        for place in places:
            assert "s3cr" not in place


async def test_executor_legacy_mode_sends_no_token(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_count("twitter", A, 42)
    settings = settings_for(Twitter, fake_upstream, make_settings, **CONFIG, mode="legacy")
    outcome = await run(Twitter, settings, [A])
    assert outcome.counts == {A: 42}
    assert outcome.observations[A] == Observation(42)
    (call,) = fake_upstream.calls("twitter")
    assert (call.path, call.params) == ("/1/urls/count.json", [("url", A)])
    assert all("s3cr" not in f"{k}: {v}" for k, v in call.headers)


async def test_executor_without_token_is_a_request_error(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream
) -> None:
    outcome = await run(Twitter, settings_for(Twitter, fake_upstream, make_settings), [A])
    assert {e.kind for e in outcome.errors.values()} == {"request"}
    assert fake_upstream.calls("twitter") == []


async def test_fake_answers_401_in_x_format_without_bearer(fake_upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as raw:
        url = f"{fake_upstream.base_url}/2/tweets/counts/recent"
        params = {"query": f'url:"{A}"', "granularity": "day"}
        for headers in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer"}):
            response = await raw.get(url, params=params, headers=headers)
            assert response.status_code == 401
            assert response.json()["title"] == "Unauthorized"
            problem = Twitter.problem(401, {}, response.content)
            assert problem is not None and problem.kind == "rejected"


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("garbage"),
        Fault("answer", status=401, body=UNAUTHORIZED),
        Fault("answer", status=403, body=CLIENT_FORBIDDEN),
        Fault("answer", status=200, body=b'{"errors":[{"message":"bad"}],"title":"Oops"}'),
    ],
)
async def test_no_secret_in_any_error(
    fault: Fault, settings: Settings, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_fault("twitter", fault)
    outcome = await run(Twitter, settings, [A])
    assert outcome.counts == {}
    (call,) = fake_upstream.calls("twitter")
    assert dict(call.headers)["authorization"] == f"Bearer {TOKEN}"
    assert_outcome_holds_no_secret(outcome, SECRET_FORMS)


async def test_executor_401_is_rejected_and_429_throttled_until_reset(
    settings: Settings, fake_upstream: FakeUpstream
) -> None:
    async with open_executor(settings) as executor:
        fake_upstream.set_fault("twitter", Fault("answer", status=401, body=UNAUTHORIZED))
        rejected = await executor.run(Twitter, [A])
        reset = (("x-rate-limit-reset", str(int(time.time()) + 600)),)
        fake_upstream.set_fault(
            "twitter", Fault("answer", status=429, body=TOO_MANY, headers=reset)
        )
        throttled = await executor.run(Twitter, [A])
    assert {(e.kind, e.status) for e in rejected.errors.values()} == {("rejected", 401)}
    assert rejected.problem is not None and rejected.problem.kind == "rejected"
    assert {(e.kind, e.status) for e in throttled.errors.values()} == {("throttled", 429)}
    assert throttled.problem is not None and throttled.problem.kind == "throttled"
    assert throttled.problem.retry_after is not None
    assert 590 <= throttled.problem.retry_after <= 600


# --- the store: each day counted once ---


async def test_store_counts_each_day_once_and_adds_new_days(store: Store) -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp()
    day = 86_400.0
    await store.track(A, now)

    async def twitter_after(*observations: tuple[float, Observation]) -> tuple[int, int]:
        for at, obs in observations:
            await store.merge_counts("twitter", {A: obs}, at)
        record = await store.get(A)
        assert record is not None
        count = record.networks["twitter"].count
        assert count is not None
        return count, record.total

    first = Observation(5, days={"2026-11-22": 2, "2026-11-23": 3, "2026-11-24": 0})
    assert await twitter_after((now, first)) == (5, 5)
    # The same days fetched again, today grown: today's bucket is replaced, nothing doubles.
    again = Observation(6, days={"2026-11-22": 2, "2026-11-23": 3, "2026-11-24": 1})
    assert await twitter_after((now + 60, again), (now + 120, again)) == (6, 6)
    # A new day adds; the oldest day dropping out of X's answer takes nothing away.
    later = Observation(7, days={"2026-11-23": 3, "2026-11-24": 1, "2026-11-25": 3})
    assert await twitter_after((now + day, later)) == (9, 9)
    # Ten days on, every day seen so far has been folded into the lifetime count once.
    ten_days = Observation(4, days={"2026-12-04": 4})
    assert await twitter_after((now + 10 * day, ten_days), (now + 10 * day, ten_days)) == (13, 13)
    # An answer with nothing in the window never lowers the lifetime count.
    assert await twitter_after((now + 11 * day, Observation(0))) == (13, 13)
