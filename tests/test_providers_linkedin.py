"""LinkedIn provider: the retired countserv format, as JSON and as JSONP."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import NetworkStatus
from providers.linkedin import LinkedIn
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


def test_declared_data() -> None:
    assert LinkedIn.name == "linkedin"
    assert LinkedIn.label == "LinkedIn"
    assert LinkedIn.status is NetworkStatus.RETIRED
    assert LinkedIn.status_since == date(2018, 2, 7)
    assert LinkedIn.docs_url is not None and "linkedin.com" in LinkedIn.docs_url
    assert LinkedIn.endpoint == "https://www.linkedin.com/countserv/count/share"
    assert LinkedIn.credentials == ()
    assert LinkedIn.enabled_by_default is False
    assert LinkedIn.merges_variants == frozenset()


def test_build_request() -> None:
    req = LinkedIn.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://www.linkedin.com/countserv/count/share")
    assert list(req.params) == [("url", PAGE), ("format", "json")]


def test_build_request_rebased() -> None:
    assert_rebased(LinkedIn)


def test_one_url_per_request() -> None:
    assert_one_url_per_request(LinkedIn)


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
        *NOT_ANSWERS,
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


def test_discovered_through_entry_point() -> None:
    assert_discovered(LinkedIn)


@given(st.binary())
def test_parse_arbitrary_bytes(raw: bytes) -> None:
    assert_counts_or_parse_error(LinkedIn, raw)


@given(json_objects("count", "fCnt") | JSON_VALUES, st.booleans())
def test_parse_arbitrary_json(data: object, wrapped: bool) -> None:
    raw = handle(data) if wrapped else json.dumps(data).encode()
    assert_counts_or_parse_error(LinkedIn, raw)


async def test_executor_over_socket(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    calls = await check_executor(LinkedIn, fake_upstream, make_settings)
    assert all(dict(c.params)["format"] == "json" for c in calls)


async def test_failures_hold_no_secret(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    await check_failures_hold_no_secret(LinkedIn, fake_upstream, make_settings)
