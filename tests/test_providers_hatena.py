"""Hatena provider: request building and the pure parser on literal single and batch bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import ParseError
from providers.hatena import Hatena
from tests.provider_checks import (
    JSON_VALUES,
    assert_counts_or_parse_error,
    parse_error,
)

A = "https://a/"
B = "https://b/"
# The documented batch sample from the reference, verbatim.
SAMPLE_BATCH = b'{"https://a/":3,"https://b/":0}'


def test_build_request_batch_repeats_url() -> None:
    req = Hatena.build_request([A, B], None, {})
    assert req.method == "GET"
    assert req.url == "https://bookmark.hatenaapis.com/count/entries"
    assert list(req.params) == [("url", A), ("url", B)]


def test_build_request_single_uses_entry_endpoint() -> None:
    req = Hatena.build_request([A], None, {})
    assert req.url == "https://bookmark.hatenaapis.com/count/entry"
    assert list(req.params) == [("url", A)]


def test_build_request_full_batch() -> None:
    urls = [f"https://example.com/{i}" for i in range(50)]
    assert [v for _, v in Hatena.build_request(urls, None, {}).params] == urls


def test_batch_reference_sample() -> None:
    assert Hatena.parse([A, B], SAMPLE_BATCH) == {A: 3, B: 0}


def test_batch_missing_url_is_zero() -> None:
    assert Hatena.parse([A, B], b'{"https://a/": 7}') == {A: 7, B: 0}
    assert Hatena.parse([A, B], b"{}") == {A: 0, B: 0}


def test_batch_ignores_unrequested_keys_and_matches_exactly() -> None:
    raw = b'{"https://a/": 1, "http://a/": 5, "https://A/": 9}'
    assert Hatena.parse([A, B], raw) == {A: 1, B: 0}


def test_batch_negative_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="outside"):
        Hatena.parse([A, B], b'{"https://a/": -1, "https://b/": 2}')


@pytest.mark.parametrize(
    "raw",
    [
        b"3",
        b"not json",
        b"[3, 0]",
        b'"x"',
        b'{"https://a/": "3"}',
        b'{"https://a/": 3.0}',
        b'{"https://a/": true}',
        b'{"https://a/": null}',
        b'{"https://a/": [3]}',
        b'{"https://a/": {"count": 3}}',
        b'{"https://a/": NaN}',
        b'{"https://a/": 1, "https://other/": "x"}',
    ],
)
def test_batch_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Hatena, raw, [A, B])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"46", 46),
        (b"46\n", 46),
        (b" 0 ", 0),
        (b"", 0),  # Hatena's way of saying 0
        (b" \r\n\t", 0),
    ],
)
def test_single_bodies(raw: bytes, expected: int) -> None:
    assert Hatena.parse([A], raw) == {A: expected}


@pytest.mark.parametrize(
    "raw",
    [
        b"null",
        b"-1",
        b"1000000000001",  # above 10^12: a broken answer, not a count
        b"4 6",
        b"+46",
        b"1_000",
        b"4.6",
        b"46.0",
        b"0x2e",
        b"1e3",
        b"true",
        "\u0664\u0666".encode(),  # Arabic-Indic digits: int() would take them
        b'{"https://a/": 3}',
        b"[46]",
        b'"46"',
        b"<html>oops</html>",
        b"\xff\xfe",
        b"9" * 5000,  # beyond int()'s digit limit
    ],
)
def test_single_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Hatena, raw, [A])


_urls = st.sampled_from([[A], [A, B], [A, B, "https://c/"]])


@given(_urls, st.dictionaries(st.sampled_from([A, B]) | st.text(), JSON_VALUES) | JSON_VALUES)
def test_parse_arbitrary_json(urls: list[str], data: object) -> None:
    assert_counts_or_parse_error(Hatena, json.dumps(data).encode(), urls)
