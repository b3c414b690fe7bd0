"""OK.ru provider: the tp=json like count, a string, with -1 for a page never shared."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import NetworkStatus
from providers.ok import OK
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


def body(count: object) -> bytes:
    return json.dumps({"count": count}).encode()


def test_declared_data() -> None:
    assert OK.name == "ok"
    assert OK.label == "OK.ru"
    assert OK.status is NetworkStatus.UNDOCUMENTED
    assert OK.status_since is None
    assert OK.docs_url == "https://apiok.ru/en/ext/like"
    assert OK.endpoint == "https://connect.ok.ru/dk"
    assert OK.credentials == ()
    assert OK.enabled_by_default is True


def test_build_request() -> None:
    req = OK.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://connect.ok.ru/dk")
    assert list(req.params) == [("st.cmd", "extLike"), ("tp", "json"), ("ref", PAGE)]


def test_build_request_rebased() -> None:
    assert_rebased(OK)


def test_one_url_per_request() -> None:
    assert_one_url_per_request(OK)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"count":"12"}', 12),  # the usual form: a string
        (b'{"count":12}', 12),
        (b'{"count":"0"}', 0),
        (b'{"count":0}', 0),
        (b'{"count":"-1"}', 0),  # never shared (social-likes#179)
        (b'{"count":-1}', 0),
        (b'{"count":" 12 "}', 12),
        (body(str(10**12)), 10**12),
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(OK, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        *NOT_ANSWERS,
        b"{}",  # no count: not documented as 0
        body(None),
        body(""),
        body("-2"),
        body(-2),
        body("- 1"),
        body("-1.0"),
        body(-1.0),
        body(12.0),
        body("12.0"),
        body("+12"),
        body("1 2"),
        body("\u0661\u0662"),  # Arabic-Indic digits
        body(True),
        body(["12"]),
        body(str(10**12 + 1)),
        body("9" * 5000),
        b'{"count":"12"',  # truncated
        b"ODKL.updateCount('odklcnt0','12');",  # the legacy JSONP form, not asked for
        b'{"error_code":100,"error_msg":"PARAM : Missing required parameter ref"}',
        b'{"count":"12","error_msg":"oops"}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(OK, raw)


def test_discovered_through_entry_point() -> None:
    assert_discovered(OK)


@given(st.binary())
def test_parse_arbitrary_bytes(raw: bytes) -> None:
    assert_counts_or_parse_error(OK, raw)


@given(json_objects("count") | JSON_VALUES)
def test_parse_arbitrary_json(data: object) -> None:
    assert_counts_or_parse_error(OK, json.dumps(data).encode())


async def test_executor_over_socket(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    calls = await check_executor(OK, fake_upstream, make_settings)
    assert all(dict(c.params)["tp"] == "json" for c in calls)


async def test_failures_hold_no_secret(
    fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    await check_failures_hold_no_secret(OK, fake_upstream, make_settings)
