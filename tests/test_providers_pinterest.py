"""Pinterest provider: the JSONP count endpoint, its "-" sentinel and string counts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import NetworkStatus
from providers.pinterest import Pinterest
from tests.fakeupstream import FakeUpstream
from tests.provider_checks import (
    JSON_VALUES,
    NOT_ANSWERS,
    PAGE,
    SettingsFactory,
    assert_counts_or_parse_error,
    assert_discovered,
    assert_one_url_per_request,
    assert_rebased,
    check_executor,
    check_failures_hold_no_secret,
    json_objects,
    parse_error,
    parse_one,
)

# The reference sample (Shariff's backend), with the callback this provider asks for.
SAMPLE = b'receiveCount({"url":"http://www.heise.de","count":17})'


def jsonp(data: object, callback: str = "receiveCount") -> bytes:
    return f"{callback}({json.dumps(data)})".encode()


def test_declared_data() -> None:
    assert Pinterest.name == "pinterest"
    assert Pinterest.label == "Pinterest"
    assert Pinterest.status is NetworkStatus.UNDOCUMENTED
    assert Pinterest.status_since is None
    assert Pinterest.docs_url is not None and Pinterest.docs_url.startswith("https://")
    assert Pinterest.endpoint == "https://api.pinterest.com/v1/urls/count.json"
    assert Pinterest.credentials == ()
    assert Pinterest.enabled_by_default is True
    assert Pinterest.merges_variants == frozenset({"scheme"})


def test_build_request() -> None:
    req = Pinterest.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://api.pinterest.com/v1/urls/count.json")
    assert list(req.params) == [("callback", "receiveCount"), ("url", PAGE)]
    assert req.headers == {} and req.json is None and req.form is None


def test_build_request_rebased() -> None:
    assert_rebased(Pinterest)


def test_one_url_per_request() -> None:
    assert_one_url_per_request(Pinterest)


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
        *NOT_ANSWERS,
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


def test_discovered_through_entry_point() -> None:
    assert_discovered(Pinterest)


@given(st.binary())
def test_parse_arbitrary_bytes(raw: bytes) -> None:
    assert_counts_or_parse_error(Pinterest, raw)


@given(json_objects("count", "url") | JSON_VALUES)
def test_parse_arbitrary_jsonp(data: object) -> None:
    assert_counts_or_parse_error(Pinterest, jsonp(data))


async def test_executor_over_socket(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    calls = await check_executor(Pinterest, fake_upstream, make_settings)
    assert all(dict(c.params)["callback"] == "receiveCount" for c in calls)


async def test_failures_hold_no_secret(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    await check_failures_hold_no_secret(Pinterest, fake_upstream, make_settings)
