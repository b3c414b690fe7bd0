"""Hatena provider: request building and the pure parser on literal single and batch bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import NetworkStatus, ParseError
from providers.hatena import Hatena
from providers.registry import discover

A = "https://a/"
B = "https://b/"
# The documented batch sample from the reference, verbatim.
SAMPLE_BATCH = b'{"https://a/":3,"https://b/":0}'


def test_declared_data() -> None:
    assert Hatena.name == "hatena"
    assert Hatena.label == "Hatena Bookmark"
    assert Hatena.status is NetworkStatus.LIVE
    assert Hatena.endpoint == "https://bookmark.hatenaapis.com/count/entries"
    assert Hatena.batch_size == 50
    assert Hatena.credentials == ()


def test_build_request_batch_repeats_url() -> None:
    req = Hatena.build_request([A, B], None, {})
    assert req.method == "GET"
    assert req.url == "https://bookmark.hatenaapis.com/count/entries"
    assert list(req.params) == [("url", A), ("url", B)]


def test_build_request_single_uses_entry_endpoint() -> None:
    req = Hatena.build_request([A], None, {})
    assert req.url == "https://bookmark.hatenaapis.com/count/entry"
    assert list(req.params) == [("url", A)]


def test_build_request_base_url_keeps_paths() -> None:
    base = "http://127.0.0.1:9000"
    assert Hatena.build_request([A, B], base, {}).url == f"{base}/count/entries"
    assert Hatena.build_request([A], base, {}).url == f"{base}/count/entry"


def test_build_request_full_batch() -> None:
    urls = [f"https://example.com/{i}" for i in range(50)]
    assert [v for _, v in Hatena.build_request(urls, None, {}).params] == urls


@pytest.mark.parametrize("n", [0, 51])
def test_build_request_rejects_bad_batch_sizes(n: int) -> None:
    with pytest.raises(ValueError):
        Hatena.build_request([f"https://example.com/{i}" for i in range(n)], None, {})


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
        b"",
        b"   ",
        b"3",
        b"not json",
        b"<html>oops</html>",
        b"\xff\xfe\x00",
        b"[]",
        b"[3, 0]",
        b"null",
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
    with pytest.raises(ParseError):
        Hatena.parse([A, B], raw)


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
    with pytest.raises(ParseError):
        Hatena.parse([A], raw)


def test_discovered_through_entry_point() -> None:
    providers = discover()
    if not providers:
        pytest.skip("the flares package is not installed (no entry points)")
    assert providers["hatena"] is Hatena


def _check(urls: list[str], raw: bytes) -> None:
    try:
        result = Hatena.parse(urls, raw)
    except ParseError:
        return
    assert set(result) == set(urls)
    assert all(type(v) is int and v >= 0 for v in result.values())


_urls = st.sampled_from([[A], [A, B], [A, B, "https://c/"]])


@given(_urls, st.binary())
def test_parse_arbitrary_bytes(urls: list[str], raw: bytes) -> None:
    _check(urls, raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(_urls, st.dictionaries(st.sampled_from([A, B]) | st.text(), _json) | _json)
def test_parse_arbitrary_json(urls: list[str], data: object) -> None:
    _check(urls, json.dumps(data).encode())
