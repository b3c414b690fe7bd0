"""The executor against the fake upstream: batching, counts, and every kind of failure."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from aggregator.config import Settings
from aggregator.fetch import (
    MAX_MESSAGE,
    UNAVAILABLE_WAIT,
    Coalescing,
    Executor,
    FetchOutcome,
    chunks,
    scrub,
    with_query,
)
from aggregator.gate import Gate
from aggregator.pools import Pools
from aggregator.runtime import redis_client
from providers.base import (
    NetworkStatus,
    Observation,
    ParseError,
    Provider,
    ProviderRequest,
    rebase,
)
from providers.hackernews import HackerNews
from providers.hatena import Hatena
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import free_port

SettingsFactory = Callable[..., Settings]
# Characters that URL encoding changes, so both the raw and the encoded form are checked.
SECRET = "s3cr/t+key=&42"


@pytest.fixture
async def client() -> AsyncIterator[Pools]:
    async with Pools() as pools:
        yield pools


def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def provider_conf(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": base_url, "timeout": 2.0, **extra}


class KeyedSearch(Provider):
    """Test-only: sends its bearer token as a query parameter to the Hatena batch path."""

    name: ClassVar[str] = "keyed"
    label: ClassVar[str] = "Keyed"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    endpoint: ClassVar[str] = "https://keyed.example/count/entries"
    batch_size: ClassVar[int] = 2
    credentials: ClassVar[tuple[str, ...]] = ("bearer_token",)

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        params = [("url", u) for u in urls] + [("access_token", credentials["bearer_token"])]
        return ProviderRequest(url=rebase(cls.endpoint, base_url), params=params)

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        # A careless parser that echoes what it was configured with.
        raise ParseError(f"{cls.name}: cannot read {body[:20]!r} for token {SECRET}")


class PartialAnswer(Provider):
    """Test-only: answers for the first URL of each batch only."""

    name: ClassVar[str] = "partial"
    label: ClassVar[str] = "Partial"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    endpoint: ClassVar[str] = "https://partial.example/count/entries"
    batch_size: ClassVar[int] = 3

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        return ProviderRequest(
            url=rebase(cls.endpoint, base_url), params=[("url", u) for u in urls]
        )

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        return {urls[0]: 5}


def pages(n: int, prefix: str = "https://example.com/post/") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# --- scrub and chunks (pure) ---


def test_scrub_replaces_raw_and_encoded_secret() -> None:
    raw = f"GET /x?token={SECRET} failed"
    encoded = "GET /x?token=s3cr%2Ft%2Bkey%3D%2642 failed"
    plus = "GET /x?token=s3cr%2Ft%2Bkey%3D%2642&q=a+b"
    assert scrub(raw, [SECRET]) == "GET /x?token=*** failed"
    assert scrub(encoded, [SECRET]) == "GET /x?token=*** failed"
    assert scrub(plus, [SECRET]) == "GET /x?token=***&q=a+b"
    spaced = "key is my secret / or my%20secret or my+secret"
    assert scrub(spaced, ["my secret"]) == "key is *** / or *** or ***"


def test_scrub_ignores_empty_secret_and_cuts_long_messages() -> None:
    assert scrub("nothing to hide", [""]) == "nothing to hide"
    cut = scrub("x" * 500, [])
    assert len(cut) == MAX_MESSAGE == 200
    assert cut == "x" * 200
    # The secret goes before the cut, so no half secret survives at the edge.
    message = "y" * 195 + SECRET
    assert scrub(message, [SECRET]) == "y" * 195 + "***"


def test_chunks() -> None:
    assert [len(c) for c in chunks(pages(120), 50)] == [50, 50, 20]
    assert chunks(pages(3), 1) == [[u] for u in pages(3)]
    assert chunks([], 50) == []


# --- success ---


async def test_hackernews_success(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    urls = pages(3)
    for url, count in zip(urls, (17, 0, 250), strict=True):
        fake_upstream.set_count("hackernews", url, count)
    outcome = await Executor(client, make_settings()).run(HackerNews, urls)
    assert outcome.counts == dict(zip(urls, (17, 0, 250), strict=True))
    assert outcome.errors == {}
    calls = fake_upstream.calls("hackernews")
    assert sorted(dict(c.params)["query"] for c in calls) == sorted(urls)


async def test_hatena_single_success(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    fake_upstream.set_count("hatena", "https://example.com/one", 31)
    outcome = await Executor(client, make_settings()).run(Hatena, ["https://example.com/one"])
    assert outcome.counts == {"https://example.com/one": 31}
    assert outcome.errors == {}
    assert [c.path for c in fake_upstream.calls("hatena")] == ["/count/entry"]


async def test_hatena_batches_of_fifty(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    urls = pages(120)
    for i, url in enumerate(urls):
        fake_upstream.set_count("hatena", url, i * 3)
    outcome = await Executor(client, make_settings()).run(Hatena, urls)
    assert outcome.counts == {url: i * 3 for i, url in enumerate(urls)}
    assert outcome.errors == {}
    calls = fake_upstream.calls("hatena")
    assert len(calls) == 3
    assert {c.path for c in calls} == {"/count/entries"}
    assert sorted(len(c.params) for c in calls) == [20, 50, 50]
    assert sorted(v for c in calls for _, v in c.params) == sorted(urls)


async def test_latency_within_timeout_still_succeeds(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    fake_upstream.set_count("hatena", "https://example.com/slow", 4)
    fake_upstream.set_fault("hatena", Fault("latency", seconds=0.05))
    outcome = await Executor(client, make_settings()).run(Hatena, ["https://example.com/slow"])
    assert outcome.counts == {"https://example.com/slow": 4}


async def test_missing_count_is_an_error_not_zero(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    settings = make_settings(providers={"partial": provider_conf(fake_upstream.base_url)})
    urls = pages(4)
    outcome = await Executor(client, settings).run(PartialAnswer, urls)
    assert outcome.counts == {urls[0]: 5, urls[3]: 5}
    assert set(outcome.errors) == {urls[1], urls[2]}
    assert {e.kind for e in outcome.errors.values()} == {"missing"}


# --- failures ---


@pytest.mark.parametrize("provider", [HackerNews, Hatena])
async def test_http_503_fails_every_url(
    provider: type[Provider],
    make_settings: SettingsFactory,
    fake_upstream: FakeUpstream,
    client: Pools,
) -> None:
    urls = pages(3)
    for url in urls:
        fake_upstream.set_count(provider.name, url, 9)
    fake_upstream.set_fault(provider.name, Fault("status", status=503))
    outcome = await Executor(client, make_settings()).run(provider, urls)
    assert outcome.counts == {}
    assert set(outcome.errors) == set(urls)
    for error in outcome.errors.values():
        assert (error.kind, error.status) == ("http", 503)
        assert "503" in error.message


@pytest.mark.parametrize("provider", [HackerNews, Hatena])
async def test_rate_limit_is_a_throttle_with_retry_after(
    provider: type[Provider],
    make_settings: SettingsFactory,
    fake_upstream: FakeUpstream,
    client: Pools,
) -> None:
    fake_upstream.set_fault(provider.name, Fault("rate_limit", retry_after=7))
    outcome = await Executor(client, make_settings()).run(provider, pages(2))
    assert outcome.counts == {}
    assert {(e.kind, e.status) for e in outcome.errors.values()} == {("throttled", 429)}
    assert outcome.problem is not None
    assert (outcome.problem.kind, outcome.problem.retry_after) == ("throttled", 7.0)


@pytest.mark.parametrize("provider", [HackerNews, Hatena])
async def test_timeout(
    provider: type[Provider],
    make_settings: SettingsFactory,
    fake_upstream: FakeUpstream,
    client: Pools,
) -> None:
    settings = make_settings(
        providers={provider.name: provider_conf(fake_upstream.base_url, timeout=0.3)}
    )
    fake_upstream.set_fault(provider.name, Fault("timeout", seconds=10))
    urls = pages(2)
    outcome = await Executor(client, settings).run(provider, urls)
    assert outcome.counts == {}
    assert set(outcome.errors) == set(urls)
    for error in outcome.errors.values():
        assert error.kind == "timeout"
        assert error.status is None
        assert "0.3 s" in error.message


@pytest.mark.parametrize("provider", [HackerNews, Hatena])
async def test_garbage_is_parse_error(
    provider: type[Provider],
    make_settings: SettingsFactory,
    fake_upstream: FakeUpstream,
    client: Pools,
) -> None:
    fake_upstream.set_fault(provider.name, Fault("garbage"))
    urls = pages(2)
    outcome = await Executor(client, make_settings()).run(provider, urls)
    assert outcome.counts == {}
    assert set(outcome.errors) == set(urls)
    for error in outcome.errors.values():
        assert error.kind == "parse"
        assert provider.name in error.message
        assert len(error.message) <= MAX_MESSAGE


@pytest.mark.parametrize("provider", [HackerNews, Hatena])
async def test_connection_refused(
    provider: type[Provider], make_settings: SettingsFactory, client: Pools
) -> None:
    settings = make_settings(providers={provider.name: provider_conf(closed_port_url())})
    urls = pages(2)
    outcome = await Executor(client, settings).run(provider, urls)
    assert outcome.counts == {}
    assert set(outcome.errors) == set(urls)
    for error in outcome.errors.values():
        assert error.kind == "connect"
        assert error.status is None
        assert error.message.startswith("ConnectError")


async def test_one_failing_batch_keeps_the_others(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    # HN sends one request per URL: the fake cannot fail one of them, so fail a whole provider
    # and check the other, run on the same executor, is untouched.
    executor = Executor(client, make_settings())
    fake_upstream.set_fault("hatena", Fault("status", status=500))
    fake_upstream.set_count("hackernews", "https://example.com/post/0", 8)
    hn = await executor.run(HackerNews, pages(1))
    hatena = await executor.run(Hatena, pages(1))
    assert hn.counts == {"https://example.com/post/0": 8}
    assert hn.errors == {}
    assert hatena.counts == {}
    assert hatena.errors["https://example.com/post/0"].status == 500


# --- secrets ---


def _all_messages(outcome: FetchOutcome) -> list[str]:
    return [e.message for e in outcome.errors.values()]


def _assert_no_secret(outcome: FetchOutcome) -> None:
    assert outcome.errors
    for message in _all_messages(outcome):
        for form in (SECRET, "s3cr%2Ft%2Bkey%3D%2642", "s3cr/t+key", "s3cr%2Ft"):
            assert form not in message


async def test_credential_sent_but_never_in_http_error(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    settings = make_settings(
        providers={"keyed": provider_conf(fake_upstream.base_url, bearer_token=SECRET)}
    )
    fake_upstream.set_fault("hatena", Fault("status", status=503))
    outcome = await Executor(client, settings).run(KeyedSearch, pages(2))
    # The request really carried the credential, so a leak would have had something to leak.
    (call,) = fake_upstream.calls("hatena")
    assert ("access_token", SECRET) in call.params
    assert {(e.kind, e.status) for e in outcome.errors.values()} == {("http", 503)}
    _assert_no_secret(outcome)


async def test_credential_never_in_connect_error(
    make_settings: SettingsFactory, client: Pools
) -> None:
    settings = make_settings(
        providers={"keyed": provider_conf(closed_port_url(), bearer_token=SECRET)}
    )
    outcome = await Executor(client, settings).run(KeyedSearch, pages(2))
    assert {e.kind for e in outcome.errors.values()} == {"connect"}
    _assert_no_secret(outcome)


async def test_credential_never_in_parse_error(
    make_settings: SettingsFactory, fake_upstream: FakeUpstream, client: Pools
) -> None:
    settings = make_settings(
        providers={"keyed": provider_conf(fake_upstream.base_url, bearer_token=SECRET)}
    )
    outcome = await Executor(client, settings).run(KeyedSearch, pages(2))
    messages = _all_messages(outcome)
    assert {e.kind for e in outcome.errors.values()} == {"parse"}
    assert all("for token ***" in m for m in messages)
    _assert_no_secret(outcome)


class Unbuildable(PartialAnswer):
    """Test-only: refuses to build a request, as a provider does for a batch it cannot take."""

    name: ClassVar[str] = "unbuildable"

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        raise ValueError(f"{len(urls)} URLs is more than this network takes")


async def test_a_request_that_cannot_be_built_is_an_error_not_a_crash(
    make_settings: SettingsFactory, client: Pools, fake_upstream: FakeUpstream
) -> None:
    urls = pages(4)
    outcome = await Executor(client, make_settings()).run(Unbuildable, urls)
    assert outcome.counts == {}
    assert {e.kind for e in outcome.errors.values()} == {"request"}
    assert set(outcome.errors) == set(urls)
    assert fake_upstream.calls() == []


class Careless(PartialAnswer):
    """Test-only: a plugin whose parser raises something other than ParseError."""

    name: ClassVar[str] = "careless"

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        return {urls[0]: [][1]}


async def test_a_parser_bug_fails_its_urls_not_the_tick(
    make_settings: SettingsFactory, client: Pools, fake_upstream: FakeUpstream
) -> None:
    settings = make_settings(providers={"careless": provider_conf(fake_upstream.base_url)})
    outcome = await Executor(client, settings).run(Careless, pages(2))
    assert outcome.counts == {}
    assert {(e.kind, e.message) for e in outcome.errors.values()} == {
        ("parse", "the provider failed to read the answer (IndexError)")
    }


async def test_an_answer_survives_a_redis_blip_while_recording_it(
    make_settings: SettingsFactory,
    client: Pools,
    fake_upstream: FakeUpstream,
    redis: Redis,
) -> None:
    class BlipOnLeave(Gate):
        """The real gate, except that Redis drops the connection as the request is recorded."""

        async def leave(self, *args: Any, **kwargs: Any) -> None:
            raise RedisConnectionError("Connection reset by peer")

    fake_upstream.set_count("hatena", "https://example.com/post/0", 6)
    executor = Executor(client, make_settings(), BlipOnLeave(redis))
    outcome = await executor.run(Hatena, pages(1))
    assert outcome.counts == {"https://example.com/post/0": 6}


async def test_no_request_goes_out_when_redis_cannot_admit_it(
    make_settings: SettingsFactory, client: Pools, fake_upstream: FakeUpstream
) -> None:
    # A real client to a port nobody listens on: the gate cannot check the shared limits.
    nowhere = redis_client(f"redis://127.0.0.1:{free_port()}")
    try:
        outcome = await Executor(client, make_settings(), Gate(nowhere)).run(Hatena, pages(3))
    finally:
        await nowhere.aclose()
    assert fake_upstream.calls() == []
    assert outcome.counts == {}
    assert {e.kind for e in outcome.errors.values()} == {"deferred"}
    assert "Redis did not answer" in next(iter(outcome.errors.values())).message
    assert outcome.wait == UNAVAILABLE_WAIT


def test_query_parameters_are_encoded_onto_the_url() -> None:
    page = "https://example.com/a b?x=1&y=é#frag"
    url = with_query("http://net.test/count?v=2", [("url", page), ("url", "https://e.org/")])
    assert url.startswith("http://net.test/count?v=2&url=")
    assert parse_qsl(urlsplit(url).query) == [("v", "2"), ("url", page), ("url", "https://e.org/")]
    assert with_query("http://net.test/count", [("url", "u")]) == "http://net.test/count?url=u"
    assert with_query("http://net.test/count", []) == "http://net.test/count"


async def test_batches_arriving_during_a_store_call_are_stored_together() -> None:
    calls: list[list[str]] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def sink(observations: dict[str, Observation]) -> None:
        calls.append(sorted(observations))
        first_started.set()
        await release.wait()

    store = Coalescing(sink)
    first = asyncio.create_task(store({"a": Observation(1)}))
    await first_started.wait()
    later = [asyncio.create_task(store({u: Observation(2)})) for u in ("b", "c", "d")]
    await asyncio.sleep(0)
    # None of the later ones returns before its counts are handed on.
    assert not any(task.done() for task in later)
    release.set()
    await asyncio.gather(first, *later)
    assert calls == [["a"], ["b", "c", "d"]]


async def test_a_failed_store_call_fails_the_caller_that_made_it() -> None:
    async def sink(observations: dict[str, Observation]) -> None:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        await Coalescing(sink)({"a": Observation(1)})
