"""HackerNews provider: request building and the pure parser on literal Algolia bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.hackernews import HackerNews
from tests.provider_checks import (
    JSON_VALUES,
    assert_counts_or_parse_error,
    parse_error,
)

# The documented sample from the reference, verbatim.
SAMPLE = (
    b'{"hits":[{"title":"Y Combinator","url":"http://ycombinator.com","author":"pg",'
    b'"points":57,"num_comments":2,"objectID":"1","_tags":["story"]}],'
    b'"page":0,"nbHits":11,"nbPages":1,"hitsPerPage":20}'
)
PAGE = "https://example.com/post?id=1"


def body(*hits: dict[str, Any]) -> bytes:
    return json.dumps({"hits": list(hits), "page": 0, "nbHits": len(hits)}).encode()


def hit(url: Any, points: Any) -> dict[str, Any]:
    return {"title": "t", "url": url, "points": points, "objectID": "1"}


def parse(raw: bytes, url: str = PAGE) -> int:
    return HackerNews.parse([url], raw)[url]


def test_build_request_default_endpoint() -> None:
    req = HackerNews.build_request([PAGE], None, {})
    assert req.method == "GET"
    assert req.url == "https://hn.algolia.com/api/v1/search"
    assert list(req.params) == [
        ("query", PAGE),
        ("restrictSearchableAttributes", "url"),
        ("tags", "story"),
        ("hitsPerPage", "1000"),
    ]


def test_reference_sample() -> None:
    assert parse(SAMPLE, "http://ycombinator.com") == 57


def test_empty_hits_is_zero() -> None:
    assert parse(body()) == 0


def test_sums_matching_hits_and_filters_others() -> None:
    raw = body(
        hit(PAGE, 10),
        hit(PAGE, 5),  # a resubmission of the same page
        hit("https://example.com/post?id=12", 100),  # token match, different page
        hit("https://example.com/post", 100),
        hit("https://example.com/post?id=1&ref=hn", 100),
        hit("https://example.com/post/?id=1", 100),  # trailing slash is another URL
    )
    assert parse(raw) == 15


def test_http_and_https_are_different_pages() -> None:
    raw = body(hit("http://example.com/a", 3), hit("https://example.com/a", 4))
    assert parse(raw, "http://example.com/a") == 3
    assert parse(raw, "https://example.com/a") == 4


def test_scheme_and_host_case_are_ignored() -> None:
    raw = body(hit("HTTPS://Example.COM/a", 3))
    assert parse(raw, "https://example.com/a") == 3
    assert parse(raw, "https://EXAMPLE.com/a") == 3


def test_path_and_query_case_matter() -> None:
    assert parse(body(hit("https://example.com/A", 3)), "https://example.com/a") == 0
    assert parse(body(hit("https://example.com/a?q=X", 3)), "https://example.com/a?q=x") == 0


def test_fragment_is_dropped() -> None:
    raw = body(hit("https://example.com/a#comments", 3), hit("https://example.com/a", 4))
    assert parse(raw, "https://example.com/a") == 7
    assert parse(raw, "https://example.com/a#top") == 7


@pytest.mark.parametrize(
    ("hit_url", "target"),
    [
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com/a", "https://example.com:443/a"),
    ],
)
def test_default_port_is_dropped(hit_url: str, target: str) -> None:
    assert parse(body(hit(hit_url, 3)), target) == 3


@pytest.mark.parametrize(
    "hit_url",
    ["https://example.com:80/a", "http://example.com:443/a", "https://example.com:8443/a"],
)
def test_other_ports_differ(hit_url: str) -> None:
    assert parse(body(hit(hit_url, 3)), "https://example.com/a") == 0


def test_null_or_missing_url_and_null_points_are_skipped() -> None:
    no_url = {"title": "Ask HN", "points": 50}
    raw = body(hit(None, 50), no_url, hit(PAGE, None), hit(PAGE, 2))
    assert parse(raw) == 2


def test_unparseable_hit_url_is_not_a_match() -> None:
    assert parse(body(hit("http://[oops/a", 3), hit("https://example.com:99999/", 3))) == 0


def test_negative_points_clamp_to_zero() -> None:
    assert parse(body(hit(PAGE, -5), hit(PAGE, 2))) == 2


def test_bad_points_on_other_urls_are_ignored() -> None:
    assert parse(body(hit("https://other.example/", "lots"), hit(PAGE, 1))) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'"hits"',
        b"{}",
        b'{"hits": null}',
        b'{"hits": {}}',
        b'{"hits": "x"}',
        b'{"hits": [1]}',
        b'{"hits": [null]}',
        b'{"hits": [{"url": 5, "points": 1}]}',
        body(hit(PAGE, "57")),
        body(hit(PAGE, 5.0)),
        body(hit(PAGE, True)),
        body(hit(PAGE, [1])),
        body(hit(PAGE, {"n": 1})),
        b'{"hits": [{"url": "https://example.com/post?id=1", "points": NaN}]}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(HackerNews, raw, [PAGE])


_hit_urls = st.sampled_from([PAGE, "HTTPS://EXAMPLE.com:443/post?id=1#x", "http://x/"])
_hit = st.fixed_dictionaries({}, optional={"url": _hit_urls | JSON_VALUES, "points": JSON_VALUES})


@given(st.lists(_hit | JSON_VALUES, max_size=5) | JSON_VALUES)
def test_parse_arbitrary_json(hits: Any) -> None:
    assert_counts_or_parse_error(HackerNews, json.dumps({"hits": hits}).encode(), [PAGE])
