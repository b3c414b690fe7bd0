"""Pinterest provider: the JSONP count endpoint, its "-" sentinel and string counts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from providers.pinterest import Pinterest
from tests.provider_checks import (
    PAGE,
    assert_counts_or_parse_error,
    json_answers,
    parse_error,
    parse_one,
)

# The reference sample (Shariff's backend), with the callback this provider asks for.
SAMPLE = b'receiveCount({"url":"http://www.heise.de","count":17})'


def jsonp(data: object, callback: str = "receiveCount") -> bytes:
    return f"{callback}({json.dumps(data)})".encode()


def test_build_request() -> None:
    req = Pinterest.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://api.pinterest.com/v1/urls/count.json")
    assert list(req.params) == [("callback", "receiveCount"), ("url", PAGE)]
    assert req.headers == {} and req.json is None and req.form is None


def test_reference_sample() -> None:
    assert parse_one(Pinterest, SAMPLE) == 17


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (jsonp({"url": PAGE, "count": 0}), 0),
        (jsonp({"url": PAGE, "count": 15089}), 15089),
        (jsonp({"url": PAGE, "count": 10**12}), 10**12),
        (jsonp({"url": PAGE, "count": "-"}), 0),  # Pinterest's "no count"
        (jsonp({"url": PAGE, "count": "42"}), 42),
        (jsonp({"url": PAGE, "count": " 42 "}), 42),
        (jsonp({"count": 3}), 3),
        (b'  receiveCount({"count":3})\n', 3),
        (b'receiveCount({"count":3});', 3),
        (b'receiveCount( {"count" : 3} )', 3),
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(Pinterest, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"url":"x","count":3}',  # JSON without the JSONP wrapper this provider asks for
        jsonp({"count": 3}, callback="x"),
        b'/**/ receiveCount({"count":3})',
        b'receiveCount({"count":3}); alert(1)',
        b'receiveCount({"count":3}',  # truncated
        b'receiveCount({"count":',
        b"receiveCount()",
        b"receiveCount(null)",
        b"receiveCount([17])",
        b"receiveCount(17)",
        jsonp({"url": PAGE}),  # no count: undocumented, so not a 0
        jsonp({"count": None}),
        jsonp({"count": -1}),
        jsonp({"count": "-1"}),
        jsonp({"count": "--"}),
        jsonp({"count": ""}),
        jsonp({"count": "1,234"}),
        jsonp({"count": "1e3"}),
        jsonp({"count": 3.0}),
        jsonp({"count": True}),
        jsonp({"count": [3]}),
        jsonp({"count": 10**12 + 1}),
        jsonp({"count": "9" * 5000}),
        jsonp({"error": "rate limit", "count": 3}),
        b'receiveCount({"count": NaN})',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Pinterest, raw)


def test_parse_error_says_why() -> None:
    assert "outside" in parse_error(Pinterest, jsonp({"count": -5}))
    assert "no 'count'" in parse_error(Pinterest, jsonp({"url": PAGE}))
    assert "receiveCount(...)" in parse_error(Pinterest, b"<html>")


@given(json_answers("count", "url"))
def test_parse_arbitrary_jsonp(data: object) -> None:
    assert_counts_or_parse_error(Pinterest, jsonp(data))
