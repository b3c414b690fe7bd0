"""VK provider: `VK.Share.count(index, count);`, where the count is the second argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.vk import VK
from tests.provider_checks import (
    PAGE,
    assert_counts_or_parse_error,
    parse_error,
    parse_one,
)

# The reference sample (shariff-backend-java VkTest), verbatim.
SAMPLE = b"VK.Share.count(1, 7);"


def test_build_request() -> None:
    req = VK.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://vk.com/share.php")
    assert list(req.params) == [("act", "count"), ("index", "1"), ("url", PAGE)]


def test_reference_sample() -> None:
    assert parse_one(VK, SAMPLE) == 7


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"VK.Share.count(1, 0);", 0),
        (b"VK.Share.count(1, 23);", 23),  # the second argument, not the index
        (b"VK.Share.count(1,23);", 23),
        (b"VK.Share.count(1, 23)", 23),
        (b" VK.Share.count( 1 ,  23 ) ;\n", 23),
        (b"VK.Share.count(1, 1000000000000);", 10**12),
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(VK, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"VK.Share.count(1);",
        b"VK.Share.count(23);",
        b"VK.Share.count();",
        b"VK.Share.count(1, 2, 3);",
        b"VK.Share.count(0, 23);",  # an index we did not send
        b"VK.Share.count(2, 23);",
        b"VK.Share.count(1, -1);",
        b"VK.Share.count(1, '23');",
        b"VK.Share.count(1, 2.5);",
        b"VK.Share.count(1, 1e3);",
        b"VK.Share.count(1, );",
        b"VK.Share.count(1, 1000000000001);",
        b"VK.Share.count(1, " + b"9" * 5000 + b");",
        b"VK.Share.count(1, 23",  # truncated
        b"VK.Share.count(1, ",
        b"VK.Share.count(1, 23); VK.Share.count(1, 99);",
        b"x = 1; VK.Share.count(1, 23);",
        b'{"count": 23}',
        b"VK.Share.count(1, \xd9\xa2\xd9\xa3);",  # Arabic-Indic digits
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(VK, raw)


@given(st.text() | st.integers().map(str), st.text() | st.integers().map(str))
def test_parse_arbitrary_arguments(first: str, second: str) -> None:
    assert_counts_or_parse_error(VK, f"VK.Share.count({first}, {second});".encode())
