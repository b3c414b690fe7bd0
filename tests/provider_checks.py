"""What every provider's tests share: what each provider needs to be driven, parse properties,
rebasing, batch limits, the executor over a socket, and the auth step of the networks with one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from hypothesis import strategies as st

from aggregator.config import SECRET_FIELDS, Settings
from aggregator.fetch import Executor, FetchOutcome, chunks
from aggregator.pools import Pools
from providers.base import MAX_COUNT, Observation, ParseError, Provider, ProviderRequest, Token
from providers.bluesky import MAX_LIFETIME
from providers.registry import discover
from tests.fakes import bluesky as fake_bluesky
from tests.fakes import reddit as fake_reddit
from tests.fakeupstream import GARBAGE, Call, FakeUpstream, Fault

SettingsFactory = Callable[..., Settings]

PAGE = "https://example.com/post"
# Pages whose URLs need encoding (query, fragment, non-ASCII), so "encoded exactly once" is tested.
PAGES = (
    "https://example.com/a",
    "https://example.com/post?id=1&utm_source=x y",
    "https://example.com/caf\u00e9/#top",
)
# Every credential setting gets a value with characters URL encoding changes. A provider may send
# its own credentials to its own network; no other secret may ever leave the process.
SECRETS = {name: f"s3cr/t+{name}=&42" for name in SECRET_FIELDS}
# The base URLs a provider is moved under, and the prefix each gives the endpoint's path.
BASES = (
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ("https://mirror.example/legacy/", "https://mirror.example/legacy"),
)

# Bodies that are no provider's answer (to a one-URL request, or a batch of two), nor a token.
NOT_ANSWERS = (
    b"",
    GARBAGE,
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
# Rate-limit headers some network reads, for "problem() reads any answer".
LIMIT_HEADERS = (
    "retry-after",
    "x-app-usage",
    "x-rate-limit-reset",
    "x-rate-limit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-remaining",
)


def json_values(
    keys: st.SearchStrategy[str] | None = None, *, max_leaves: int = 10
) -> st.SearchStrategy[Any]:
    """Arbitrary JSON; objects have `keys` (any short text by default)."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    names = st.text(max_size=8) if keys is None else keys
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


JSON_VALUES = json_values()
# Values a count field might hold, good and bad: plenty of near misses.
COUNTISH = (
    JSON_VALUES
    | st.integers(min_value=-2, max_value=MAX_COUNT + 2)
    | st.from_regex(r"\A[ -]?[0-9]{1,14}[ .]?\Z")
    | st.sampled_from(["-", "-1", "", " ", "1e3", "0x10", "\u0661\u0662", "9" * 5000])
    | st.floats(min_value=-10, max_value=1e13)
)


def json_answers(*keys: str) -> st.SearchStrategy[Any]:
    """Arbitrary JSON, often objects that may hold each of `keys` with count-like values."""
    fixed = st.fixed_dictionaries({}, optional=dict.fromkeys(keys, COUNTISH))
    objects = st.builds(
        lambda a, b: {**a, **b}, st.dictionaries(st.text(max_size=8), JSON_VALUES), fixed
    )
    return objects | JSON_VALUES


# --- what each provider needs ---


@dataclass(frozen=True)
class TokenFlow:
    """How the fake of a network with an auth step is driven."""

    # Makes the fake forget every token it issued, as the network does when it revokes them.
    revoke: Callable[[], None]
    # A credential setting and a value the fake refuses.
    wrong: tuple[str, str]
    # The network's own error answer, sent by the auth step with a 200.
    error_body: bytes
    # Whether a lifetime parse_token gives is one the network's tokens can have.
    lifetime: Callable[[float], bool]


@dataclass(frozen=True)
class Spec:
    """What the shared checks need to know of a provider beyond what it declares."""

    batch_size: int = 1
    method: Literal["GET", "POST"] = "GET"
    # The credentials the fake accepts, where it accepts only fixed ones.
    settings: Mapping[str, str] = field(default_factory=dict)
    # What build_request needs besides `settings` (a token after the auth step, say).
    config: Mapping[str, str] = field(default_factory=dict)
    # Settings that send requests elsewhere (another mode, another endpoint).
    modes: tuple[Mapping[str, str], ...] = ()
    # What parse gives per URL: an int, an Observation, or either.
    gives: Literal["int", "observation", "either"] = "int"
    parts: frozenset[str] = frozenset()
    # Whether its Observations hold day buckets that sum to the count.
    days: bool = False
    # Whether an answer may leave a requested URL out (missing, not 0).
    leaves_out: bool = False
    token: TokenFlow | None = None
    # The pages the executor is run over.
    pages: tuple[str, ...] = PAGES

    def request_config(self) -> dict[str, str]:
        """A configuration build_request and token_request accept."""
        return {**self.settings, **self.config}


SPECS: dict[str, Spec] = {
    "bluesky": Spec(
        settings={"handle": fake_bluesky.HANDLE, "app_password": fake_bluesky.APP_PASSWORD},
        config={"token": "a.b.c"},
        token=TokenFlow(
            revoke=fake_bluesky.revoke_tokens,
            wrong=("app_password", "wxyz-9999/zz+q"),
            error_body=b'{"error":"InternalServerError","message":"x"}',
            lifetime=lambda seconds: 0 <= seconds <= MAX_LIFETIME,
        ),
    ),
    "facebook": Spec(
        batch_size=50,
        config={"app_id": "app+id/77", "app_secret": "s3cr/t+key=&42"},
        gives="observation",
        parts=frozenset({"reactions", "comments", "shares"}),
        leaves_out=True,
    ),
    "googleplus": Spec(method="POST"),
    "hatena": Spec(batch_size=50),
    # The fake's decoy (the URL plus "?flares_decoy=1") falls into a fragment, which Hacker News
    # ignores, so the decoy would count for a page with a fragment: none here.
    "hackernews": Spec(pages=(*PAGES[:2], "https://example.com/caf\u00e9/")),
    "reddit": Spec(
        settings={
            "client_id": fake_reddit.CLIENT_ID,
            "client_secret": fake_reddit.CLIENT_SECRET,
        },
        config={"token": "tok"},
        gives="observation",
        parts=frozenset({"score", "comments"}),
        token=TokenFlow(
            revoke=fake_reddit.revoke_tokens,
            wrong=("client_secret", "wr0ng/secret+key=&9"),
            error_body=b'{"message": "Unauthorized", "error": 401}',
            lifetime=lambda seconds: seconds > 0,
        ),
    ),
    "twitter": Spec(
        config={"bearer_token": "AAAA-token"},
        modes=({"mode": "legacy"},),
        gives="either",
        days=True,
    ),
}


def spec_of(provider: type[Provider]) -> Spec:
    return SPECS.get(provider.name, Spec())


def pages(n: int) -> list[str]:
    return [f"https://example.com/{i}" for i in range(n)]


def batch_of(provider: type[Provider]) -> list[str]:
    """The URLs of a typical request: one, or two for a provider that batches."""
    return list(PAGES[: min(2, provider.batch_size)])


# --- parsing ---


def assert_counts_or_parse_error(
    provider: type[Provider], raw: bytes, urls: Sequence[str] = (PAGE,)
) -> None:
    """parse gives the URLs counts from 0 to MAX_COUNT in the provider's shape, or raises a
    ParseError naming itself."""
    spec = spec_of(provider)
    try:
        result = provider.parse(urls, raw)
    except ParseError as exc:
        assert str(exc).startswith(f"{provider.name}: ")
        return
    if spec.leaves_out:
        assert set(result) <= set(urls)
    else:
        assert set(result) == set(urls)
    for value in result.values():
        if spec.gives == "int":
            assert type(value) is int
        elif spec.gives == "observation":
            assert isinstance(value, Observation)
        obs = value if isinstance(value, Observation) else Observation(value)
        assert type(obs.count) is int
        assert 0 <= obs.count <= MAX_COUNT
        assert set(obs.parts) <= spec.parts
        assert all(type(v) is int and 0 <= v <= MAX_COUNT for v in obs.parts.values())
        assert all(type(v) is int and 0 <= v <= MAX_COUNT for v in obs.days.values())
        assert spec.days or not obs.days
        if spec.days and isinstance(value, Observation):
            assert sum(obs.days.values()) == obs.count
        for day in obs.days:
            assert date.fromisoformat(day).isoformat() == day


def parse_one(provider: type[Provider], raw: bytes) -> int | Observation:
    """What parse says about PAGE."""
    return provider.parse([PAGE], raw)[PAGE]


def parse_error(provider: type[Provider], raw: bytes, urls: Sequence[str] = (PAGE,)) -> str:
    """The message of the ParseError parse must raise; it names the provider."""
    with pytest.raises(ParseError) as info:
        provider.parse(urls, raw)
    message = str(info.value)
    assert message.startswith(f"{provider.name}: ")
    return message


def token_parse_error(provider: type[Provider], raw: bytes) -> str:
    """The message of the ParseError parse_token must raise; it names the provider."""
    with pytest.raises(ParseError) as info:
        provider.parse_token(raw)
    message = str(info.value)
    assert message.startswith(f"{provider.name}: ")
    return message


def token_or_parse_error(provider: type[Provider], raw: bytes) -> Token | None:
    """The token parse_token reads, None after a ParseError naming the provider."""
    try:
        token = provider.parse_token(raw)
    except ParseError as exc:
        assert str(exc).startswith(f"{provider.name}: ")
        return None
    assert isinstance(token.value, str) and token.value
    return token


# --- building requests ---


def requests_for(
    provider: type[Provider], base_url: str | None, config: Mapping[str, str]
) -> list[ProviderRequest]:
    """Every kind of request the provider makes: each mode, one URL or a batch, the auth step."""
    spec = spec_of(provider)
    batches = [[PAGE], *([batch_of(provider)] if provider.batch_size > 1 else [])]
    found: list[ProviderRequest] = []
    for mode in ({}, *spec.modes):
        conf = {**config, **mode}
        found += [provider.build_request(urls, base_url, conf) for urls in batches]
        token = provider.token_request(base_url, conf)
        if token is not None:
            found.append(token)
    return found


def assert_rebased(provider: type[Provider]) -> None:
    """A base URL replaces scheme and host (plus an optional prefix) of every endpoint, the
    auth step's too, keeping path and query; nothing else of a request changes."""
    config = spec_of(provider).request_config()
    default = requests_for(provider, None, config)
    endpoints = {
        value
        for name in dir(provider)
        if name.endswith("endpoint") and isinstance(value := getattr(provider, name), str)
    }
    assert provider.endpoint in endpoints
    assert endpoints <= {req.url for req in default}
    for base, prefix in BASES:
        moved = requests_for(provider, base, config)
        assert [req.url for req in moved] == [prefix + urlsplit(req.url).path for req in default]
        assert [replace(req, url="") for req in moved] == [replace(req, url="") for req in default]


def assert_batch_limits(provider: type[Provider]) -> None:
    """A full batch is one request; an empty batch or one URL too many is refused."""
    spec = spec_of(provider)
    size = provider.batch_size
    assert size == spec.batch_size
    config = spec.request_config()
    provider.build_request(pages(size), None, config)
    for urls in ([], pages(size + 1)):
        with pytest.raises(ValueError, match="exactly one URL" if size == 1 else None):
            provider.build_request(urls, None, config)


def assert_discovered(provider: type[Provider]) -> None:
    """The installed distribution's entry point names this class."""
    providers = discover()
    if not providers:
        pytest.skip("the flares package is not installed (no entry points)")
    assert providers[provider.name] is provider


# --- secrets ---


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret raw and URL-encoded."""
    return sorted({f(s) for s in secrets for f in (str, quote, quote_plus)})


def assert_no_secret(text: str, forms: Iterable[str]) -> None:
    for form in forms:
        assert form not in text


def assert_no_secret_sent(calls: Sequence[Call], secrets: Iterable[str]) -> None:
    """None of `secrets` travelled anywhere: not in the path, query, headers or body."""
    forms = secret_forms(secrets)
    for call in calls:
        assert_no_secret(json.dumps([call.path, call.params, call.headers]), forms)
        assert_no_secret(call.body.decode("utf-8", errors="replace"), forms)
        assert_no_secret(json.dumps(call.body.decode("utf-8", errors="replace")), forms)


def assert_outcome_holds_no_secret(outcome: FetchOutcome, forms: Iterable[str]) -> None:
    """The outcome has errors, and neither they nor its problem quote any of `forms`."""
    assert outcome.errors
    texts = [error.message for error in outcome.errors.values()]
    if outcome.problem is not None:
        texts.append(outcome.problem.message)
    for text in texts:
        assert_no_secret(text, forms)


def credentials_sent(calls: Sequence[Call]) -> list[str]:
    """What Authorization headers carried: tokens, encoded credentials."""
    headers = [dict(call.headers).get("authorization", "") for call in calls]
    return [value.split()[-1] for value in headers if value.split()]


# --- the executor over a real socket ---


def settings_for(
    provider: type[Provider],
    fake_upstream: FakeUpstream,
    make_settings: SettingsFactory,
    **conf: Any,
) -> Settings:
    """The provider pointed at the fake with `conf`."""
    base = {"base_url": fake_upstream.base_url, "timeout": 2.0}
    return make_settings(providers={provider.name: {**base, **conf}})


def secret_settings(
    provider: type[Provider],
    fake_upstream: FakeUpstream,
    make_settings: SettingsFactory,
    **conf: Any,
) -> Settings:
    """Every credential setting set to a secret, the ones the fake wants to what it accepts."""
    settings = {**SECRETS, **spec_of(provider).settings, **conf}
    return settings_for(provider, fake_upstream, make_settings, **settings)


def foreign_secrets(provider: type[Provider]) -> list[str]:
    """The secrets of the settings the provider does not take: they must never be sent."""
    return [value for name, value in SECRETS.items() if name not in provider.credentials]


@asynccontextmanager
async def open_executor(settings: Settings) -> AsyncIterator[Executor]:
    """One executor (and so one token cache) over real pools for several runs."""
    async with Pools() as pools:
        yield Executor(pools, settings)


async def run(provider: type[Provider], settings: Settings, urls: Sequence[str]) -> FetchOutcome:
    async with open_executor(settings) as executor:
        return await executor.run(provider, urls)


def _sent(call: Call) -> str:
    """What a count request carried besides credentials: query, JSON body and its type."""
    body = json.loads(call.body) if call.body else None
    kind = dict(call.headers).get("content-type") if call.body else None
    return json.dumps([call.params, body, kind], sort_keys=True)


def _built(request: ProviderRequest) -> str:
    kind = None if request.json is None else "application/json"
    return json.dumps([list(map(list, request.params)), request.json, kind], sort_keys=True)


def _path(url: str) -> str:
    return urlsplit(url).path


async def check_executor(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    """Over the real socket the executor ends up with exactly the counts set on the fake, from
    one request per batch as the provider built it, after one auth step if it has one."""
    spec = spec_of(provider)
    counts = dict(zip(spec.pages, (7, 0, 123_456), strict=True))
    for url, count in counts.items():
        fake_upstream.set_count(provider.name, url, count)
    settings = secret_settings(provider, fake_upstream, make_settings)
    outcome = await run(provider, settings, spec.pages)
    assert outcome.errors == {}
    assert outcome.problem is None
    assert outcome.counts == counts
    calls = fake_upstream.calls()
    assert {c.network for c in calls} == {provider.name}
    # The token only goes into headers, so any token builds the same queries and bodies.
    config = {**settings.provider(provider.name).values(), "token": "t"}
    batches = chunks(spec.pages, provider.batch_size)
    wanted = [(spec.method, _path(provider.endpoint))] * len(batches)
    auth = provider.token_request(fake_upstream.base_url, config)
    if auth is not None:
        # Concurrent batches wait for one auth step.
        wanted.append((auth.method, _path(auth.url)))
    assert sorted((c.method, c.path) for c in calls) == sorted(wanted)
    asked = [c for c in calls if c.path == _path(provider.endpoint)]
    built = [provider.build_request(urls, None, config) for urls in batches]
    assert sorted(map(_sent, asked)) == sorted(map(_built, built))
    assert_no_secret_sent(calls, foreign_secrets(provider))


async def check_failures_hold_no_secret(
    provider: type[Provider], fake_upstream: FakeUpstream, make_settings: SettingsFactory
) -> None:
    """Errors, throttling and unreadable answers are errors without secrets, never zeros."""
    settings = secret_settings(provider, fake_upstream, make_settings)
    # An upstream that echoes a secret back: the message may quote the body, the executor scrubs.
    echo = json.dumps({"error": next(iter(SECRETS.values()))}).encode()
    cases: list[tuple[Fault, str]] = [
        (Fault("status", status=500), "http"),
        (Fault("rate_limit", retry_after=7), "throttled"),
        (Fault("garbage"), "parse"),
        (Fault("answer", status=200, body=echo), "parse"),
        (Fault("answer", status=200, body=echo[::-1]), "parse"),
    ]
    async with open_executor(settings) as executor:
        # A success first: any auth step's token is cached, so the faults hit the count requests.
        assert (await executor.run(provider, [PAGE])).errors == {}
        sent = credentials_sent(fake_upstream.calls())
        forms = secret_forms([*settings.secret_values(), *sent])
        for fault, kind in cases:
            fake_upstream.set_fault(provider.name, fault)
            outcome = await executor.run(provider, [PAGE])
            assert outcome.counts == {}, fault
            error = outcome.errors[PAGE]
            assert error.kind == kind, (fault, error)
            assert_outcome_holds_no_secret(outcome, forms)
            if kind == "throttled":
                assert outcome.problem is not None
                assert outcome.problem.retry_after == 7
    assert_no_secret_sent(fake_upstream.calls(), foreign_secrets(provider))
