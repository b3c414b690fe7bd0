"""What every provider must do, checked over every provider: the built-in ones by class and any
other the registry discovers. What is particular to one network is in its own test module."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date
from typing import Literal
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import NetworkStatus, Provider
from providers.bluesky import Bluesky
from providers.buffer import Buffer
from providers.facebook import Facebook
from providers.googleplus import GooglePlus
from providers.hackernews import HackerNews
from providers.hatena import Hatena
from providers.linkedin import LinkedIn
from providers.ok import OK
from providers.pinterest import Pinterest
from providers.reddit import Reddit
from providers.registry import discover
from providers.tumblr import Tumblr
from providers.twitter import Twitter
from providers.vk import VK
from tests.fakeupstream import FakeUpstream, Fault
from tests.provider_checks import (
    LIMIT_HEADERS,
    NOT_ANSWERS,
    PAGE,
    PAGES,
    SPECS,
    SettingsFactory,
    TokenFlow,
    assert_batch_limits,
    assert_counts_or_parse_error,
    assert_discovered,
    assert_outcome_holds_no_secret,
    assert_rebased,
    batch_of,
    check_executor,
    check_failures_hold_no_secret,
    open_executor,
    pages,
    parse_error,
    run,
    secret_forms,
    secret_settings,
    spec_of,
    token_or_parse_error,
    token_parse_error,
)


@dataclass(frozen=True)
class Declared:
    """What a provider declares about its network."""

    name: str
    label: str
    status: NetworkStatus
    endpoint: str
    docs_url: str
    status_since: date | None = None
    credentials: tuple[str, ...] = ()
    enabled_by_default: bool = True
    merges_variants: frozenset[str] = frozenset()
    throttle_seconds: float = 60.0


def assert_declared(provider: type[Provider], expected: Declared) -> None:
    """The provider declares exactly these values, of these types."""
    wanted = {f.name: getattr(expected, f.name) for f in fields(Declared)}
    found = {name: getattr(provider, name) for name in wanted}
    assert {k: (type(v), v) for k, v in found.items()} == {
        k: (type(v), v) for k, v in wanted.items()
    }


# What each built-in provider declares: its network, where it asks, how it is run.
DECLARED: dict[type[Provider], Declared] = {
    Bluesky: Declared(
        "bluesky",
        "Bluesky",
        NetworkStatus.LIVE,
        endpoint="https://bsky.social/xrpc/app.bsky.feed.searchPosts",
        docs_url="https://docs.bsky.app/docs/api/app-bsky-feed-search-posts",
        credentials=("handle", "app_password"),
        enabled_by_default=False,
    ),
    Buffer: Declared(
        "buffer",
        "Buffer",
        NetworkStatus.UNDOCUMENTED,
        endpoint="https://api.bufferapp.com/1/links/shares.json",
        docs_url="https://buffer.com/developers/api/links",
    ),
    Facebook: Declared(
        "facebook",
        "Facebook",
        NetworkStatus.LIVE,
        endpoint="https://graph.facebook.com/v25.0/",
        docs_url="https://developers.facebook.com/docs/graph-api/reference/url/",
        credentials=("app_id", "app_secret"),
        throttle_seconds=3600.0,
    ),
    GooglePlus: Declared(
        "googleplus",
        "Google+",
        NetworkStatus.RETIRED,
        endpoint="https://clients6.google.com/rpc",
        docs_url="https://support.google.com/googlecurrents/answer/9195133",
        status_since=date(2019, 4, 2),
        enabled_by_default=False,
    ),
    HackerNews: Declared(
        "hackernews",
        "Hacker News",
        NetworkStatus.LIVE,
        endpoint="https://hn.algolia.com/api/v1/search",
        docs_url="https://hn.algolia.com/api",
    ),
    Hatena: Declared(
        "hatena",
        "Hatena Bookmark",
        NetworkStatus.LIVE,
        endpoint="https://bookmark.hatenaapis.com/count/entries",
        docs_url="https://developer.hatena.ne.jp/ja/documents/bookmark/apis/getcount",
    ),
    LinkedIn: Declared(
        "linkedin",
        "LinkedIn",
        NetworkStatus.RETIRED,
        endpoint="https://www.linkedin.com/countserv/count/share",
        docs_url="https://developer.linkedin.com/blog/posts/2018/deprecating-the-inshare-counter",
        status_since=date(2018, 2, 7),
        enabled_by_default=False,
    ),
    OK: Declared(
        "ok",
        "OK.ru",
        NetworkStatus.UNDOCUMENTED,
        endpoint="https://connect.ok.ru/dk",
        docs_url="https://apiok.ru/en/ext/like",
    ),
    Pinterest: Declared(
        "pinterest",
        "Pinterest",
        NetworkStatus.UNDOCUMENTED,
        endpoint="https://api.pinterest.com/v1/urls/count.json",
        docs_url=(
            "https://github.com/heiseonline/shariff-backend-php/blob/HEAD/src/Backend/Pinterest.php"
        ),
        merges_variants=frozenset({"scheme"}),
    ),
    Reddit: Declared(
        "reddit",
        "Reddit",
        NetworkStatus.LIVE,
        endpoint="https://oauth.reddit.com/api/info",
        docs_url="https://www.reddit.com/dev/api/#GET_api_info",
        credentials=("client_id", "client_secret"),
    ),
    Tumblr: Declared(
        "tumblr",
        "Tumblr",
        NetworkStatus.UNDOCUMENTED,
        endpoint="https://api.tumblr.com/v2/share/stats",
        docs_url=(
            "https://github.com/3UU/wordpress-shariff-wrapper/blob/HEAD/"
            "trunk/services/shariff-tumblr.php"
        ),
    ),
    Twitter: Declared(
        "twitter",
        "X (Twitter)",
        NetworkStatus.PAID,
        endpoint="https://api.x.com/2/tweets/counts/recent",
        docs_url="https://docs.x.com/x-api/posts/counts/introduction",
        credentials=("bearer_token",),
        throttle_seconds=900.0,
    ),
    VK: Declared(
        "vk",
        "VK",
        NetworkStatus.UNDOCUMENTED,
        endpoint="https://vk.com/share.php",
        docs_url="https://vk.com/dev/widget_share",
    ),
}
BUILT_IN = tuple(DECLARED)
PROVIDERS = sorted({*BUILT_IN, *discover().values()}, key=lambda p: p.name)
WITH_AUTH_STEP = [p for p in PROVIDERS if spec_of(p).token is not None]

built_in = pytest.mark.parametrize("provider", BUILT_IN, ids=[p.name for p in BUILT_IN])
every_provider = pytest.mark.parametrize("provider", PROVIDERS, ids=[p.name for p in PROVIDERS])
auth_step = pytest.mark.parametrize(
    "provider", WITH_AUTH_STEP, ids=[p.name for p in WITH_AUTH_STEP]
)


def flow_of(provider: type[Provider]) -> TokenFlow:
    flow = spec_of(provider).token
    assert flow is not None
    return flow


def test_specs_name_providers() -> None:
    assert set(SPECS) <= {p.name for p in PROVIDERS}


@built_in
def test_declared_data(provider: type[Provider]) -> None:
    assert_declared(provider, DECLARED[provider])


@built_in
def test_discovered_through_entry_point(provider: type[Provider]) -> None:
    assert_discovered(provider)


# --- requests ---


@every_provider
def test_build_request_rebased(provider: type[Provider]) -> None:
    assert_rebased(provider)


@every_provider
def test_batch_limits(provider: type[Provider]) -> None:
    assert_batch_limits(provider)


# --- parsing ---


@every_provider
@pytest.mark.parametrize("raw", NOT_ANSWERS)
def test_not_an_answer_is_a_parse_error(provider: type[Provider], raw: bytes) -> None:
    parse_error(provider, raw, batch_of(provider))


@every_provider
@given(st.binary(), st.integers(1, len(PAGES)))
def test_parse_arbitrary_bytes(provider: type[Provider], raw: bytes, n: int) -> None:
    assert_counts_or_parse_error(provider, raw, PAGES[: min(n, provider.batch_size)])


@every_provider
@given(
    st.integers(100, 599),
    st.dictionaries(st.sampled_from(LIMIT_HEADERS), st.text(max_size=80)),
    st.binary(max_size=200),
)
def test_problem_never_raises(
    provider: type[Provider], status: int, headers: dict[str, str], raw: bytes
) -> None:
    problem = provider.problem(status, headers, raw)
    assert problem is None or problem.kind in ("throttled", "rejected")


# --- the executor against the fake upstream ---


@every_provider
async def test_executor_over_socket(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    await check_executor(provider, fake_upstream, make_settings)


@every_provider
async def test_failures_hold_no_secret(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    await check_failures_hold_no_secret(provider, fake_upstream, make_settings)


# --- the auth step, for the networks that have one ---


@every_provider
def test_every_auth_step_is_checked(provider: type[Provider]) -> None:
    request = provider.token_request(None, spec_of(provider).request_config())
    assert (request is not None) == (provider in WITH_AUTH_STEP)


@auth_step
def test_token_request_needs_every_credential(provider: type[Provider]) -> None:
    credentials = spec_of(provider).settings
    assert provider.token_request(None, {}) is None
    for name in provider.credentials:
        others = {key: value for key, value in credentials.items() if key != name}
        assert provider.token_request(None, others) is None


@auth_step
def test_build_request_needs_a_token(provider: type[Provider]) -> None:
    with pytest.raises(ValueError) as info:
        provider.build_request([PAGE], None, spec_of(provider).settings)
    assert all(name in str(info.value) for name in provider.credentials)


@auth_step
@pytest.mark.parametrize("raw", NOT_ANSWERS)
def test_not_a_token_answer_is_a_parse_error(provider: type[Provider], raw: bytes) -> None:
    token_parse_error(provider, raw)


@auth_step
@given(st.binary())
def test_parse_token_arbitrary_bytes(provider: type[Provider], raw: bytes) -> None:
    token = token_or_parse_error(provider, raw)
    assert token is None or flow_of(provider).lifetime(token.expires_in)


def called(provider: type[Provider], fake_upstream: FakeUpstream) -> list[str]:
    """The requests made, in order: "token" for the auth step, "count" for a count."""
    request = provider.token_request(None, spec_of(provider).request_config())
    assert request is not None
    names = {urlsplit(request.url).path: "token", urlsplit(provider.endpoint).path: "count"}
    return [names.get(call.path, call.path) for call in fake_upstream.calls()]


@auth_step
async def test_token_is_fetched_once_and_reused(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    urls = pages(4)
    for i, url in enumerate(urls):
        fake_upstream.set_count(provider.name, url, i * 10)
    async with open_executor(secret_settings(provider, fake_upstream, make_settings)) as executor:
        for i, url in enumerate(urls):
            outcome = await executor.run(provider, [url])
            assert outcome.errors == {}
            assert outcome.counts == {url: i * 10}
    # Auth steps are rate limited (per account, per app): one token serves every request.
    assert called(provider, fake_upstream) == ["token", "count", "count", "count", "count"]
    tokens = {dict(c.headers)["authorization"] for c in fake_upstream.calls()[1:]}
    assert len(tokens) == 1


@auth_step
async def test_revoked_token_is_renewed_once(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    url = "https://example.com/again"
    fake_upstream.set_count(provider.name, url, 3)
    async with open_executor(secret_settings(provider, fake_upstream, make_settings)) as executor:
        assert (await executor.run(provider, [url])).counts == {url: 3}
        flow_of(provider).revoke()
        outcome = await executor.run(provider, [url])
    assert outcome.counts == {url: 3}
    assert outcome.errors == {}
    # One 401 with the revoked token, one renewal, one retry: never a second failure.
    assert called(provider, fake_upstream) == ["token", "count", "count", "token", "count"]


@auth_step
async def test_rejected_credentials(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    name, wrong = flow_of(provider).wrong
    settings = secret_settings(provider, fake_upstream, make_settings, **{name: wrong})
    outcome = await run(provider, settings, ["https://example.com/a"])
    assert outcome.problem is not None
    assert outcome.problem.kind == "rejected"
    assert {(e.kind, e.status) for e in outcome.errors.values()} == {("rejected", 401)}
    # Nothing is asked of the network without a token.
    assert called(provider, fake_upstream) == ["token"]
    assert_outcome_holds_no_secret(outcome, secret_forms(settings.secret_values()))


@auth_step
@pytest.mark.parametrize("fault", ["500", "garbage", "error-body"])
async def test_no_secret_when_the_auth_step_fails(
    provider: type[Provider],
    fault: Literal["500", "garbage", "error-body"],
    fake_upstream: FakeUpstream,
    make_settings: SettingsFactory,
) -> None:
    faults = {
        "500": Fault("status", status=500),
        "garbage": Fault("garbage"),
        "error-body": Fault("answer", status=200, body=flow_of(provider).error_body),
    }
    fake_upstream.set_fault(provider.name, faults[fault])
    settings = secret_settings(provider, fake_upstream, make_settings)
    outcome = await run(provider, settings, ["https://example.com/a", "https://example.com/b"])
    assert outcome.counts == {}
    assert {e.kind for e in outcome.errors.values()} == {"auth"}
    assert_outcome_holds_no_secret(outcome, secret_forms(settings.secret_values()))


# --- what the badges and the share bar show ---


@every_provider
def test_color_is_hex(provider: type[Provider]) -> None:
    assert re.fullmatch(r"#[0-9a-f]{6}", provider.color)


@every_provider
def test_share_link_carries_the_page(provider: type[Provider]) -> None:
    page = "https://example.com/a b?x=1&y=é#top"
    link = provider.share_link(page, title="Tom & Jerry")
    if link is None:
        # Google+ is the one network whose share page is gone with it.
        assert provider.share_url is None and provider.name == "googleplus"
        return
    parts = urlsplit(link)
    assert parts.scheme == "https" and parts.netloc
    assert quote(page, safe="") in link
    assert "Tom & Jerry" not in link and " " not in link
