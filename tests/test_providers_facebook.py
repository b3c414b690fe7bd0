"""Facebook provider: request building, the pure parser on literal Graph bodies, problems, and
the executor against the fake Graph API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import Settings
from providers.base import MAX_COUNT, Observation, ParseError, Problem
from providers.facebook import Facebook
from tests.fakeupstream import FakeUpstream, Fault
from tests.provider_checks import (
    SettingsFactory,
    assert_counts_or_parse_error,
    assert_outcome_holds_no_secret,
    json_values,
    pages,
    parse_error,
    run,
    settings_for,
)

A = "https://a.example/"
B = "https://b.example/post?x=1&y=2"
APP_ID = "app+id/77"
# Characters that URL encoding changes, so both the raw and the encoded form are checked.
APP_SECRET = "s3cr/t+key=&42"
CONFIG = {"app_id": APP_ID, "app_secret": APP_SECRET}
# The og_object{engagement} sample from the reference (shariff-backend-java's test resource).
SAMPLE_OG = (
    '{"og_object":{"engagement":{"count":9450,"social_sentence":"9.450 Personen gefällt das."},'
    '"id":"331776430263909"},"id":"http://www.heise.de"}'
)
# The documented `fields=engagement` sample of the URL node.
SAMPLE_ENGAGEMENT = (
    '{"engagement":{"reaction_count":514919172,"comment_count":68687082,'
    '"share_count":975739682,"comment_plugin_count":1641},"id":"https://www.facebook.com"}'
)
USAGE_HIGH = '{"call_count":95,"total_time":10,"total_cputime":5}'
USAGE_LOW = '{"call_count":12,"total_time":90,"total_cputime":5}'


def keyed(**nodes: str) -> bytes:
    """A multi-id answer from literal node texts, keyed by URL."""
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in nodes.items()) + "}").encode()


def og(count: Any) -> str:
    return json.dumps({"og_object": {"engagement": {"count": count}, "id": "1"}, "id": A})


def graph_error(code: int, message: str = "(#4) Application request limit reached") -> bytes:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Ab"}
    return json.dumps({"error": error}).encode()


def counts_of(result: dict[str, Observation]) -> dict[str, int]:
    return {url: obs.count for url, obs in result.items()}


# --- declared data and requests ---


def test_required_settings() -> None:
    assert Facebook.required_settings({}) == ("app_id", "app_secret")


def test_build_request() -> None:
    req = Facebook.build_request([A, B], None, CONFIG)
    assert req.method == "GET"
    assert req.url == "https://graph.facebook.com/v25.0/"
    assert list(req.params) == [
        ("ids", f"{A},{B}"),
        ("fields", "og_object{engagement}"),
        ("access_token", f"{APP_ID}|{APP_SECRET}"),
    ]
    # The token travels only in the query: no header, no body, no basic auth.
    assert req.headers == {}
    assert (req.form, req.json, req.basic_auth) == (None, None, None)


def test_build_request_graph_version() -> None:
    base = "http://127.0.0.1:9000"
    config = {**CONFIG, "graph_version": "v19.0"}
    assert Facebook.build_request([A], None, config).url == "https://graph.facebook.com/v19.0/"
    assert Facebook.build_request([A], base + "/", config).url == f"{base}/v19.0/"


@pytest.mark.parametrize("version", ["19.0", "v19", "v19.0/", "v19.0/../x", "V19.0", " v1.0"])
def test_build_request_rejects_bad_graph_version(version: str) -> None:
    with pytest.raises(ValueError, match="graph_version"):
        Facebook.build_request([A], None, {**CONFIG, "graph_version": version})


def test_build_request_empty_graph_version_is_the_default() -> None:
    # Settings treat an empty value as unset.
    req = Facebook.build_request([A], None, {**CONFIG, "graph_version": ""})
    assert req.url == "https://graph.facebook.com/v25.0/"


def test_build_request_full_batch() -> None:
    urls = pages(50)
    assert dict(Facebook.build_request(urls, None, CONFIG).params)["ids"] == ",".join(urls)


@pytest.mark.parametrize("config", [{}, {"app_id": "1"}, {"app_secret": "2"}])
def test_build_request_needs_both_credentials(config: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="app_id and app_secret"):
        Facebook.build_request([A], None, config)


def test_comma_in_url_is_escaped_and_mapped_back() -> None:
    url = "https://a.example/list/1,2,3"
    ids = dict(Facebook.build_request([url, A], None, CONFIG).params)["ids"]
    assert ids == f"https://a.example/list/1%2C2%2C3,{A}"
    assert ids.split(",") == ["https://a.example/list/1%2C2%2C3", A]
    answer = keyed(**{"https://a.example/list/1%2C2%2C3": og(5), A: og(1)})
    assert counts_of(Facebook.parse([url, A], answer)) == {url: 5, A: 1}


# --- parsing ---


def test_og_object_reference_sample() -> None:
    url = "http://www.heise.de"
    assert Facebook.parse([url], keyed(**{url: SAMPLE_OG})) == {url: Observation(9450)}


def test_engagement_reference_sample_keeps_parts() -> None:
    url = "https://www.facebook.com"
    parts = {"reactions": 514919172, "comments": 68687082, "shares": 975739682}
    expected = Observation(sum(parts.values()), parts=parts)
    assert Facebook.parse([url], keyed(**{url: SAMPLE_ENGAGEMENT})) == {url: expected}


def test_both_shapes_count_is_og_object_and_parts_kept() -> None:
    node = json.dumps(
        {
            "og_object": {"engagement": {"count": 40}, "id": "1"},
            "engagement": {"reaction_count": 10, "comment_count": 2, "share_count": 30},
            "id": A,
        }
    )
    result = Facebook.parse([A], keyed(**{A: node}))
    assert result == {A: Observation(40, parts={"reactions": 10, "comments": 2, "shares": 30})}


def test_batch_and_zero() -> None:
    result = Facebook.parse([A, B], keyed(**{A: og(7), B: og(0)}))
    assert counts_of(result) == {A: 7, B: 0}


def test_no_og_object_is_zero() -> None:
    # Documented: a URL has no og_object until someone shares it.
    raw = keyed(**{A: json.dumps({"id": A}), B: og(3)})
    assert Facebook.parse([A, B], raw) == {A: Observation(0), B: Observation(3)}


def test_url_left_out_is_missing_not_zero() -> None:
    assert counts_of(Facebook.parse([A, B], keyed(**{A: og(2)}))) == {A: 2}
    assert Facebook.parse([A, B], b"{}") == {}


def test_unrequested_keys_are_ignored_and_keys_match_exactly() -> None:
    raw = keyed(**{A: og(1), "http://a.example/": og(5), "https://A.example/": og(9)})
    assert counts_of(Facebook.parse([A], raw)) == {A: 1}


@pytest.mark.parametrize(
    ("node", "match"),
    [
        (og(-1), "outside"),
        (og(MAX_COUNT + 1), "outside"),  # no page has a trillion engagements
        (og("12"), "not an integer"),  # Graph counts are numbers
        (og(12.0), "not an integer"),
        (og(True), "not an integer"),
        (og(None), "not an integer"),
        ('{"og_object": {"id": "1"}, "id": "x"}', "no engagement"),
        ('{"og_object": {"engagement": {}}, "id": "x"}', "not an integer"),
        ('{"og_object": null, "id": "x"}', "no engagement"),
        ('{"og_object": {"engagement": 5}, "id": "x"}', "no engagement"),
        ('{"og_object": [], "id": "x"}', "no engagement"),
        ('{"engagement": {"reaction_count": 1, "comment_count": 2}, "id": "x"}', "share_count"),
        ('{"engagement": {"reaction_count": 1, "comment_count": 2, "share_count": "3"}}', "share"),
        ('{"engagement": {"reaction_count": -1, "comment_count": 0, "share_count": 0}}', "outside"),
        (
            '{"engagement": {"reaction_count": 0, "comment_count": 0, "share_count": 0,'
            ' "comment_plugin_count": -4}}',
            "plugin",
        ),
        ('{"engagement": [1, 2, 3]}', "not an object"),
        ("null", "not an object"),
        ("7", "not an object"),
        ('"7"', "not an object"),
        ("[]", "not an object"),
    ],
)
def test_bad_nodes_raise_parse_error(node: str, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        Facebook.parse([A], keyed(**{A: node}))


def test_engagement_sum_beyond_max_is_a_parse_error() -> None:
    node = json.dumps(
        {
            "engagement": {
                "reaction_count": MAX_COUNT,
                "comment_count": MAX_COUNT,
                "share_count": 1,
            }
        }
    )
    with pytest.raises(ParseError, match="sums to"):
        Facebook.parse([A], keyed(**{A: node}))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"<html><body>Sorry, something went wrong.</body></html>",
        b"\xff\xfe\x00",
        b'{"https://a.example/": {"og_object": {"engagement": {"count": 9',  # truncated
        b"[]",
        b"null",
        b"9450",
        b'"9450"',
        # A JSONP wrapper (only sent when a callback is asked for, which flares never does).
        b'/**/ cb({"https://a.example/": {"id": "https://a.example/"}});',
        b'{"https://a.example/": NaN}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Facebook, raw, [A])


@pytest.mark.parametrize("code", [4, 17, 32, 100, 190, 341, 613])
def test_error_bodies_raise_parse_error_without_the_message(code: int) -> None:
    raw = graph_error(code, message=f"Malformed access token {APP_ID}|{APP_SECRET}")
    with pytest.raises(ParseError, match=f"code={code}") as caught:
        Facebook.parse([A], raw)
    # Graph messages can quote the token: only code, subcode and type are repeated.
    assert APP_SECRET not in str(caught.value)
    assert APP_ID not in str(caught.value)


@pytest.mark.parametrize("error", [b'{"error": "boom"}', b'{"error": {"code": [1]}}'])
def test_unreadable_error_bodies_raise_parse_error(error: bytes) -> None:
    with pytest.raises(ParseError, match="Graph error"):
        Facebook.parse([A], error)


# --- problems ---


@pytest.mark.parametrize("code", [4, 17, 32, 341, 613])
@pytest.mark.parametrize("status", [400, 403, 200])
def test_throttle_codes(code: int, status: int) -> None:
    problem = Facebook.problem(status, {}, graph_error(code))
    assert problem == Problem("throttled", f"Graph API rate limit (error code {code})")
    # None: the scheduler waits throttle_seconds, a whole rolling hour.
    assert problem.retry_after is None


def test_code_190_is_rejected_and_message_holds_no_secret() -> None:
    raw = graph_error(190, message=f"Malformed access token {APP_ID}|{APP_SECRET}")
    problem = Facebook.problem(400, {}, raw)
    assert problem is not None
    assert problem.kind == "rejected"
    assert "190" in problem.message
    assert APP_SECRET not in problem.message and APP_ID not in problem.message


@pytest.mark.parametrize("code", [1, 2, 100, 104, 803])
def test_other_codes_are_no_problem(code: int) -> None:
    assert Facebook.problem(400, {}, graph_error(code)) is None


def test_app_usage_above_90_on_a_2xx_is_throttled() -> None:
    problem = Facebook.problem(200, {"x-app-usage": USAGE_HIGH}, keyed(**{A: og(1)}))
    assert problem is not None
    assert problem.kind == "throttled"
    assert "call_count" in problem.message and "95" in problem.message


@pytest.mark.parametrize("status", [400, 500, 503])
def test_app_usage_above_90_on_an_error_is_throttled(status: int) -> None:
    headers = {"x-app-usage": '{"call_count":12,"total_time":91,"total_cputime":5}'}
    problem = Facebook.problem(status, headers, graph_error(100, "(#100) bad"))
    assert problem is not None
    assert problem.kind == "throttled"
    assert "total_time" in problem.message


@pytest.mark.parametrize(
    "usage",
    [USAGE_LOW, '{"call_count":90,"total_time":90,"total_cputime":90}', "", "oops", "[99]", "{}"],
)
def test_app_usage_at_or_below_90_or_unreadable_is_no_problem(usage: str) -> None:
    assert Facebook.problem(200, {"x-app-usage": usage}, b"{}") is None


def test_throttle_code_wins_over_usage_and_429_keeps_retry_after() -> None:
    problem = Facebook.problem(403, {"x-app-usage": USAGE_LOW}, graph_error(4))
    assert problem is not None and problem.kind == "throttled"
    problem = Facebook.problem(429, {"retry-after": "30"}, b"")
    assert problem == Problem("throttled", "HTTP 429 Too Many Requests", 30.0)
    assert Facebook.problem(500, {}, b"<html>") is None


# --- properties ---


_urls = st.sampled_from([[A], [A, B]])


_json = json_values(st.text(), max_leaves=12)
_keys = st.sampled_from(
    [A, B, "og_object", "engagement", "count", "reaction_count", "comment_count", "share_count"]
)
_nodes = st.recursive(
    _json, lambda children: st.dictionaries(_keys | st.text(), children), max_leaves=12
)


@given(_urls, st.dictionaries(st.sampled_from([A, B]) | st.text(), _nodes) | _json)
def test_parse_arbitrary_json(urls: list[str], data: object) -> None:
    assert_counts_or_parse_error(Facebook, json.dumps(data).encode(), urls)


# --- the executor against the fake Graph API ---


@pytest.fixture
def settings(fake_upstream: FakeUpstream, make_settings: SettingsFactory) -> Settings:
    return settings_for(Facebook, fake_upstream, make_settings, **CONFIG)


SECRET_FORMS = (
    APP_SECRET,
    "s3cr%2Ft%2Bkey%3D%2642",
    "s3cr/t+key",
    "s3cr%2Ft",
    APP_ID,
    "app%2Bid%2F77",
    "app+id",
)


async def test_executor_counts_in_batches_and_token_only_in_query(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream
) -> None:
    urls = [*pages(59), "https://example.com/a,b"]
    for i, url in enumerate(urls):
        fake_upstream.set_count("facebook", url, i * 7)
    settings = settings_for(Facebook, fake_upstream, make_settings, **CONFIG, graph_version="v21.0")
    outcome = await run(Facebook, settings, urls)
    assert outcome.errors == {}
    assert outcome.problem is None  # the fake's low X-App-Usage is no throttle
    assert outcome.counts == {url: i * 7 for i, url in enumerate(urls)}
    calls = fake_upstream.calls("facebook")
    assert sorted(len(dict(c.params)["ids"].split(",")) for c in calls) == [10, 50]
    for call in calls:
        assert call.path == "/v21.0/"
        assert call.method == "GET"
        params = dict(call.params)
        assert params["access_token"] == f"{APP_ID}|{APP_SECRET}"
        assert params["fields"] == "og_object{engagement}"
        # Nowhere else: not in another parameter, a header, the path or a body.
        others = [v for k, v in call.params if k != "access_token"]
        places = [*others, *(f"{k}: {v}" for k, v in call.headers), call.path, call.body.decode()]
        for place in places:
            assert APP_SECRET not in place and APP_ID not in place


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("garbage"),
        Fault("answer", status=400, body=graph_error(100, f"bad token {APP_ID}|{APP_SECRET}")),
        Fault("answer", status=200, body=graph_error(1, f"bad token {APP_ID}|{APP_SECRET}")),
    ],
)
async def test_no_secret_in_any_error(
    fault: Fault, settings: Settings, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_fault("facebook", fault)
    urls = pages(3)
    outcome = await run(Facebook, settings, urls)
    assert outcome.counts == {}
    assert set(outcome.errors) == set(urls)
    (call,) = fake_upstream.calls("facebook")
    assert ("access_token", f"{APP_ID}|{APP_SECRET}") in call.params
    assert_outcome_holds_no_secret(outcome, SECRET_FORMS)


@pytest.mark.parametrize(
    ("code", "kind"), [(4, "throttled"), (613, "throttled"), (190, "rejected")]
)
async def test_executor_graph_error_codes(
    code: int, kind: str, settings: Settings, fake_upstream: FakeUpstream
) -> None:
    message = f"Error validating access token {APP_ID}|{APP_SECRET}"
    fake_upstream.set_fault(
        "facebook", Fault("answer", status=400, body=graph_error(code, message))
    )
    outcome = await run(Facebook, settings, pages(2))
    assert outcome.counts == {}
    assert {(e.kind, e.status) for e in outcome.errors.values()} == {(kind, 400)}
    assert outcome.problem is not None and outcome.problem.kind == kind
    assert_outcome_holds_no_secret(outcome, SECRET_FORMS)


async def test_executor_keeps_data_of_a_2xx_with_high_app_usage(
    settings: Settings, fake_upstream: FakeUpstream
) -> None:
    urls = pages(2)
    body = keyed(**{urls[0]: og(12), urls[1]: json.dumps({"id": urls[1]})})
    headers = (("X-App-Usage", USAGE_HIGH),)
    fake_upstream.set_fault("facebook", Fault("answer", status=200, body=body, headers=headers))
    outcome = await run(Facebook, settings, urls)
    assert outcome.counts == {urls[0]: 12, urls[1]: 0}
    assert outcome.problem is not None and outcome.problem.kind == "throttled"


async def test_executor_engagement_parts_reach_the_outcome(
    settings: Settings, fake_upstream: FakeUpstream
) -> None:
    url = "https://www.facebook.com"
    fake_upstream.set_fault(
        "facebook", Fault("answer", status=200, body=keyed(**{url: SAMPLE_ENGAGEMENT}))
    )
    outcome = await run(Facebook, settings, [url])
    assert outcome.observations[url].parts == {
        "reactions": 514919172,
        "comments": 68687082,
        "shares": 975739682,
    }


async def test_fake_refuses_a_request_without_token(fake_upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as raw:
        response = await raw.get(
            f"{fake_upstream.base_url}/v25.0/", params={"ids": A, "fields": "og_object{engagement}"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 104
    assert Facebook.problem(400, {}, response.content) is None
