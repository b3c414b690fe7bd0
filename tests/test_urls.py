"""Validation and canonical form of page URLs."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.urls import InvalidURL, canonical, domain_allowed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.COM/Path?b=2&a=1#frag", "https://example.com/Path?a=1&b=2"),
        (
            "https://example.com/?utm_source=x&id=7&UTM_Medium=y&fbclid=abc",
            "https://example.com/?id=7",
        ),
        ("https://example.com/p?gclid=1&mc_cid=2&mc_eid=3&ref=hn", "https://example.com/p"),
        ("https://example.com/p?tag=b&x=1&tag=a&&", "https://example.com/p?tag=b&tag=a&x=1"),
        ("https://example.com/p?q=a%20b&Q=c", "https://example.com/p?q=a%20b&Q=c"),
        ("https://example.com/p?", "https://example.com/p"),
        ("https://example.com/p?reference=1", "https://example.com/p?reference=1"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("https://example.com./", "https://example.com/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        # IP literals are hosts (pages may live on one), spelled one way.
        ("http://[0:0::1]/", "http://[::1]/"),
        ("http://[2001:DB8::1]/", "http://[2001:db8::1]/"),
        ("http://192.0.2.1./", "http://192.0.2.1/"),
        ("https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/"),
        ("https://a-b.c0.example/", "https://a-b.c0.example/"),
        ("https://" + "a" * 63 + ".example/", "https://" + "a" * 63 + ".example/"),
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
        ("http://localhost/", "single-label"),
        ("http://intranet:8080/", "single-label"),
        ("https://exa_mple.com/", "valid host name"),
        ("https://-example.com/", "valid host name"),
        ("https://example-.com/", "valid host name"),
        ("https://" + "a" * 64 + ".example/", "valid host name"),
        ("https://" + "abcdefghi." * 25 + "example/", "longer than 253"),
        ("https://example.com../", "valid host name"),
        ("https://ex%61mple.com/", "valid host name"),
        ("http://999.0.0.1/", "not an IP address"),
        ("http://010.0.0.1/", "not an IP address"),
        ("https://example.123/", "not an IP address"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("https://example.com/\x85", "control"),
        ("https://example.com/\x7f", "control"),
        ("https://\u2024example.com/", "valid"),
        ("HTTPS://user:pw@example.com/", "user name"),
        ("data:text/html,<p>", "absolute"),
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
queries = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9_-]{0,6}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_-]{0,6}", fullmatch=True),
    ),
    max_size=4,
)
tracking = st.lists(
    st.tuples(
        st.sampled_from(
            ["utm_source", "UTM_campaign", "fbclid", "gclid", "mc_cid", "ref", "campaign"]
        ),
        st.from_regex(r"[A-Za-z0-9]{0,6}", fullmatch=True),
    ),
    max_size=3,
)


@given(
    st.sampled_from(["http", "HTTP", "https", "Https"]),
    hosts,
    paths,
    queries,
    tracking,
    st.randoms(use_true_random=False),
)
def test_canonical_is_idempotent_and_spellings_meet(
    scheme: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    extra: list[tuple[str, str]],
    rng: Random,
) -> None:
    """Case, default port, fragment, tracking parameters and the order of names differ; the
    page is the same. "campaign" is a configured tracking parameter."""

    def spelled(pairs: list[tuple[str, str]]) -> str:
        return "?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else ""

    url = f"{scheme}://{host}{path}{spelled(query)}"
    once = canonical(url, ["campaign"])
    assert canonical(once, ["campaign"]) == once
    default = ":443" if scheme.lower() == "https" else ":80"
    # Shuffle whole names, keeping the order of a repeated name's values.
    names = list(dict.fromkeys(k for k, _ in query))
    rng.shuffle(names)
    mixed = [pair for name in names for pair in query if pair[0] == name] + extra
    respelled = f"{scheme.upper()}://{host.upper()}{default}{path or '/'}{spelled(mixed)}#section"
    assert canonical(respelled, ["campaign"]) == once
