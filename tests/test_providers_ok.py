"""OK.ru provider: the tp=json like count, a string, with -1 for a page never shared."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from providers.ok import OK
from tests.provider_checks import (
    PAGE,
    assert_counts_or_parse_error,
    json_answers,
    parse_error,
    parse_one,
)


def body(count: object) -> bytes:
    return json.dumps({"count": count}).encode()


def test_build_request() -> None:
    req = OK.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://connect.ok.ru/dk")
    assert list(req.params) == [("st.cmd", "extLike"), ("tp", "json"), ("ref", PAGE)]


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


@given(json_answers("count"))
def test_parse_arbitrary_json(data: object) -> None:
    assert_counts_or_parse_error(OK, json.dumps(data).encode())
