"""Validation and canonical form of page URLs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.urls import InvalidURL, canonical, domain_allowed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.COM/Path?b=2&a=1#frag", "https://example.com/Path?b=2&a=1"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("https://example.com./", "https://example.com/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_canonical_form(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("example.com/post", "absolute"),
        ("file:///etc/passwd", "absolute"),
        ("https://", "no host"),
        ("https://user@example.com/", "user name"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com/\x00", "control"),
        ("https://example.com:0x50/", "parsed"),
        ("https://a..b/", "valid host"),
        ("https://example.com/" + "x" * 2048, "2048"),
    ],
)
def test_invalid_urls_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidURL, match=reason):
        canonical(raw)


def test_allow_list_matches_domain_and_subdomains_only() -> None:
    allowed = ["example.com"]
    assert domain_allowed("https://example.com/", allowed)
    assert domain_allowed("https://blog.example.com/", allowed)
    assert not domain_allowed("https://notexample.com/", allowed)
    assert not domain_allowed("https://example.com.evil.test/", allowed)
    assert not domain_allowed("https://example.com/", [])


hosts = st.from_regex(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?(\.[A-Za-z]{2,6}){1,2}", fullmatch=True
)
paths = st.from_regex(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){0,4}", fullmatch=True)
queries = st.from_regex(r"(\?[A-Za-z0-9=&_-]{0,20})?", fullmatch=True)


@given(st.sampled_from(["http", "HTTP", "https", "Https"]), hosts, paths, queries)
def test_canonical_is_idempotent_and_spellings_meet(
    scheme: str, host: str, path: str, query: str
) -> None:
    url = f"{scheme}://{host}{path}{query}"
    once = canonical(url)
    assert canonical(once) == once
    default = ":443" if scheme.lower() == "https" else ":80"
    respelled = f"{scheme.upper()}://{host.upper()}{default}{path or '/'}{query}#section"
    assert canonical(respelled) == once
