"""Buffer provider: links/shares.json, where a body without "shares" means 0."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from providers.buffer import Buffer
from tests.provider_checks import (
    PAGE,
    assert_counts_or_parse_error,
    json_answers,
    parse_error,
    parse_one,
)

# The reference sample (shariff-backend-java BufferTest), verbatim.
SAMPLE = b'{"shares": 47348}'


def test_build_request() -> None:
    req = Buffer.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://api.bufferapp.com/1/links/shares.json")
    assert list(req.params) == [("url", PAGE)]


def test_reference_sample() -> None:
    assert parse_one(Buffer, SAMPLE) == 47348


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"shares":0}', 0),
        (b'{"shares":12}', 12),
        (b"{}", 0),  # no "shares": 0 in every fetcher (reference quirk 5)
        (b'{"url":"https://example.com/post"}', 0),
        (b'{"shares":12,"url":"https://example.com/post"}', 12),
        (json.dumps({"shares": 10**12}).encode(), 10**12),
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(Buffer, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"shares":null}',
        b'{"shares":"12"}',
        b'{"shares":12.0}',
        b'{"shares":true}',
        b'{"shares":-1}',
        b'{"shares":1000000000001}',
        b'{"shares":[12]}',
        b'{"shares":12',  # truncated
        b'{"shares":NaN}',
        b'callback({"shares":12})',
        b"[{}]",
        # Error answers have no "shares" either: they must not read as 0.
        b'{"success":false,"message":"An error occurred.","code":1000}',
        b'{"error":"Not authorized","code":401}',
        b'{"errors":["rate limited"]}',
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Buffer, raw)


def test_error_body_is_named() -> None:
    assert "error" in parse_error(Buffer, b'{"error":"Not authorized"}')


@given(json_answers("shares"))
def test_parse_arbitrary_json(data: object) -> None:
    assert_counts_or_parse_error(Buffer, json.dumps(data).encode())
