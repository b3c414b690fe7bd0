"""Checks each provider test runs: parse properties, rebasing, the executor over a socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlsplit

import httpx
import pytest
from hypothesis import strategies as st

from aggregator.config import SECRET_FIELDS, Settings
from aggregator.fetch import Executor, FetchOutcome
from providers.base import MAX_COUNT, Observation, ParseError, Provider
from providers.registry import discover
from tests.fakeupstream import Call, FakeUpstream, Fault

SettingsFactory = Callable[..., Settings]

PAGE = "https://example.com/post"
# Pages whose URLs need encoding (query, fragment, non-ASCII), so "encoded exactly once" is tested.
PAGES = (
    "https://example.com/a",
    "https://example.com/post?id=1&utm_source=x y",
    "https://example.com/caf\u00e9/#top",
)
# Every credential setting gets a value with characters URL encoding changes. The providers
# checked here take none, so none of them may leave the process.
SECRETS = {name: f"s3cr/t+{name}=&42" for name in SECRET_FIELDS}

# Bodies that are no provider's answer.
NOT_ANSWERS = (
    b"",
    b"   ",
    b"<html><body>Service Unavailable</body></html>",
    b"<!DOCTYPE html><html>",
    b"\xff\xfe\x00",
    b"null",
    b"true",
    b"42",
    b'"count"',
    b"[]",
)

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON_VALUES = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
# Values a count field might hold, good and bad: plenty of near misses.
COUNTISH = (
    JSON_VALUES
    | st.integers(min_value=-2, max_value=MAX_COUNT + 2)
    | st.from_regex(r"\A[ -]?[0-9]{1,14}[ .]?\Z")
    | st.sampled_from(["-", "-1", "", " ", "1e3", "0x10", "\u0661\u0662", "9" * 5000])
    | st.floats(min_value=-10, max_value=1e13)
)


def json_objects(*keys: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that may hold each of `keys` (with count-like values) among arbitrary ones."""
    fixed = st.fixed_dictionaries({}, optional=dict.fromkeys(keys, COUNTISH))
    return st.builds(
        lambda a, b: {**a, **b}, st.dictionaries(st.text(max_size=8), JSON_VALUES), fixed
    )


def assert_counts_or_parse_error(
    provider: type[Provider], raw: bytes, urls: Sequence[str] = (PAGE,)
) -> None:
    """parse gives every URL a count from 0 to MAX_COUNT, or raises a ParseError naming itself."""
    try:
        result = provider.parse(urls, raw)
    except ParseError as exc:
        assert str(exc).startswith(f"{provider.name}: ")
        return
    assert set(result) == set(urls)
    for value in result.values():
        count = value.count if isinstance(value, Observation) else value
        assert type(count) is int
        assert 0 <= count <= MAX_COUNT


def parse_one(provider: type[Provider], raw: bytes) -> int | Observation:
    """What parse says about PAGE."""
    return provider.parse([PAGE], raw)[PAGE]


def parse_error(provider: type[Provider], raw: bytes) -> str:
    """The message of the ParseError parse must raise; it names the provider."""
    with pytest.raises(ParseError) as info:
        provider.parse([PAGE], raw)
    message = str(info.value)
    assert message.startswith(f"{provider.name}: ")
    return message


def assert_rebased(provider: type[Provider]) -> None:
    """A base URL replaces scheme and host (plus an optional prefix), keeping path and query."""
    default = provider.build_request([PAGE], None, {})
    assert default.url == provider.endpoint
    path = urlsplit(provider.endpoint).path
    for base, expected in (
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000" + path),
        ("https://mirror.example/legacy/", "https://mirror.example/legacy" + path),
    ):
        moved = provider.build_request([PAGE], base, {})
        assert moved.url == expected
        assert (moved.method, moved.params, moved.json) == (
            default.method,
            default.params,
            default.json,
        )


def assert_one_url_per_request(provider: type[Provider]) -> None:
    assert provider.batch_size == 1
    for urls in ([], [PAGE, PAGE + "/2"]):
        with pytest.raises(ValueError, match="exactly one URL"):
            provider.build_request(urls, None, {})


def assert_discovered(provider: type[Provider]) -> None:
    """The installed distribution's entry point names this class."""
    providers = discover()
    if not providers:
        pytest.skip("the flares package is not installed (no entry points)")
    assert providers[provider.name] is provider


def settings_for(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> Settings:
    """The provider pointed at the fake, with every credential setting set to a secret."""
    conf: dict[str, Any] = {"base_url": fake_upstream.base_url, "timeout": 2.0, **SECRETS}
    return make_settings(providers={provider.name: conf})


async def run(provider: type[Provider], settings: Settings, urls: Sequence[str]) -> FetchOutcome:
    async with httpx.AsyncClient() as client:
        return await Executor(client, settings).run(provider, urls)


def secret_forms() -> list[str]:
    return sorted({f(s) for s in SECRETS.values() for f in (str, quote, quote_plus)})


def assert_no_secret(text: str) -> None:
    for form in secret_forms():
        assert form not in text


def assert_no_secret_sent(calls: Sequence[Call]) -> None:
    """No credential travelled anywhere: not in the path, query, headers or body."""
    for call in calls:
        assert_no_secret(json.dumps([call.path, call.params, call.headers]))
        assert_no_secret(call.body.decode("utf-8", errors="replace"))
        assert_no_secret(json.dumps(call.body.decode("utf-8", errors="replace")))


async def check_executor(
    provider: type[Provider],
    fake_upstream: FakeUpstream,
    make_settings: SettingsFactory,
    method: Literal["GET", "POST"] = "GET",
) -> list[Call]:
    """Over the real socket the executor ends up with exactly the counts set on the fake."""
    counts = dict(zip(PAGES, (7, 0, 123_456), strict=True))
    for url, count in counts.items():
        fake_upstream.set_count(provider.name, url, count)
    outcome = await run(provider, settings_for(provider, fake_upstream, make_settings), PAGES)
    assert outcome.errors == {}
    assert outcome.problem is None
    assert outcome.counts == counts
    calls = fake_upstream.calls()
    # One request per page, each on the network's own path, and nothing anywhere else.
    assert len(calls) == len(PAGES)
    assert {c.network for c in calls} == {provider.name}
    assert {(c.method, c.path) for c in calls} == {(method, urlsplit(provider.endpoint).path)}
    assert_no_secret_sent(calls)
    return calls


async def check_failures_hold_no_secret(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    """Errors, throttling and unreadable answers are errors without secrets, never zeros."""
    settings = settings_for(provider, fake_upstream, make_settings)
    # An upstream that echoes a secret back: the message may quote the body, the executor scrubs.
    echo = json.dumps({"error": next(iter(SECRETS.values()))}).encode()
    cases: list[tuple[Fault, str]] = [
        (Fault("status", status=500), "http"),
        (Fault("rate_limit", retry_after=7), "throttled"),
        (Fault("garbage"), "parse"),
        (Fault("answer", status=200, body=echo), "parse"),
        (Fault("answer", status=200, body=echo[::-1]), "parse"),
    ]
    for fault, kind in cases:
        fake_upstream.set_fault(provider.name, fault)
        outcome = await run(provider, settings, [PAGE])
        assert outcome.counts == {}, fault
        error = outcome.errors[PAGE]
        assert error.kind == kind, (fault, error)
        assert_no_secret(error.message)
        if kind == "throttled":
            assert outcome.problem is not None
            assert outcome.problem.retry_after == 7
    assert_no_secret_sent(fake_upstream.calls())
