"""LinkedIn provider: the retired countserv format, as JSON and as JSONP."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.linkedin import LinkedIn
from tests.provider_checks import (
    PAGE,
    assert_counts_or_parse_error,
    json_answers,
    parse_error,
    parse_one,
)

# The JSONP sample of the reference (shariff-backend-java LinkedInTest), verbatim.
SAMPLE_JSONP = (
    b'IN.Tags.Share.handleCount({"count":15089,"fCnt":"121","fCntPlusOne":"122",'
    b'"url":"http:\\/\\/www.heise.de"});'
)
SAMPLE_JSON = b'{"count":121,"fCnt":"121","fCntPlusOne":"122","url":"http://www.heise.de"}'


def body(count: object, **extra: object) -> bytes:
    return json.dumps({"count": count, "url": PAGE, **extra}).encode()


def handle(data: object) -> bytes:
    return f"IN.Tags.Share.handleCount({json.dumps(data)});".encode()


def test_build_request() -> None:
    req = LinkedIn.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://www.linkedin.com/countserv/count/share")
    assert list(req.params) == [("url", PAGE), ("format", "json")]


def test_reference_samples() -> None:
    assert parse_one(LinkedIn, SAMPLE_JSONP) == 15089
    assert parse_one(LinkedIn, SAMPLE_JSON) == 121


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (body(0, fCnt="0", fCntPlusOne="1"), 0),  # what countserv said from February 2018 on
        (body(7), 7),
        (b'{"count":7}', 7),
        (b'  {"count":7}\n', 7),
        (handle({"count": 7, "url": PAGE}), 7),
        (b'IN.Tags.Share.handleCount({"count":7})', 7),
        (b'\nIN.Tags.Share.handleCount({"count":7});\n', 7),
        (body(10**12), 10**12),
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(LinkedIn, raw) == expected


def test_fcnt_is_only_display_text() -> None:
    assert parse_one(LinkedIn, body(1500, fCnt="1.5k", fCntPlusOne="1.5k")) == 1500


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b'{"fCnt":"7","url":"x"}',  # no count: never documented as 0
        body(None),
        body("7"),  # countserv's count is a number; only fCnt is a string
        body(7.0),
        body(True),
        body(-1),
        body(10**12 + 1),
        body([7]),
        b'{"count":7',  # truncated
        b'{"count":NaN}',
        b'IN.Tags.Share.handleCount({"count":7}',
        b'IN.Tags.Share.handleCount({"count":7}); more()',
        b'x({"count":7})',
        b'IN.Tags.Share.handleCount("7")',
        handle([7]),
        body(7, error="Not Found"),
        b'{"errorCode":0,"message":"Not Found","status":404}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(LinkedIn, raw)


@given(json_answers("count", "fCnt"), st.booleans())
def test_parse_arbitrary_json(data: object, wrapped: bool) -> None:
    raw = handle(data) if wrapped else json.dumps(data).encode()
    assert_counts_or_parse_error(LinkedIn, raw)
