"""The fake upstream answers each network's format and each fault over a real socket."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from providers.base import ParseError
from providers.hackernews import HackerNews
from providers.hatena import Hatena
from tests import fakeupstream
from tests.fakeupstream import FakeUpstream, Fault

PAGE = "https://example.com/post"
OTHER = "https://example.com/other"
fake_upstream = fakeupstream.fake_upstream


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def get(
    client: httpx.Client, fake: FakeUpstream, path: str, params: list[tuple[str, str]]
) -> httpx.Response:
    return client.get(fake.base_url + path, params=tuple(params))


def test_hackernews_format_with_decoy(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_count("hackernews", PAGE, 42)
    req = HackerNews.build_request([PAGE], fake_upstream.base_url, {})
    resp = client.get(req.url, params=list(req.params))
    assert resp.status_code == 200
    hits = resp.json()["hits"]
    assert sum(h["points"] for h in hits) > 42  # the decoy counts only without filtering
    assert HackerNews.parse([PAGE], resp.content) == {PAGE: 42}
    assert fake_upstream.calls("hackernews")[0].params == list(req.params)


def test_hackernews_zero(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    resp = get(client, fake_upstream, "/api/v1/search", [("query", PAGE)])
    assert HackerNews.parse([PAGE], resp.content) == {PAGE: 0}


def test_hatena_batch_format(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_count("hatena", PAGE, 3)
    req = Hatena.build_request([PAGE, OTHER], fake_upstream.base_url, {})
    resp = client.get(req.url, params=list(req.params))
    assert resp.json() == {PAGE: 3, OTHER: 0}
    assert Hatena.parse([PAGE, OTHER], resp.content) == {PAGE: 3, OTHER: 0}


def test_hatena_single_format(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_count("hatena", PAGE, 46)
    resp = get(client, fake_upstream, "/count/entry", [("url", PAGE)])
    assert resp.content == b"46"
    resp = get(client, fake_upstream, "/count/entry", [("url", OTHER)])
    assert resp.status_code == 200
    assert resp.content == b""  # Hatena's 0
    assert Hatena.parse([OTHER], resp.content) == {OTHER: 0}


def test_unknown_path_is_404_and_recorded(
    fake_upstream: FakeUpstream, client: httpx.Client
) -> None:
    assert get(client, fake_upstream, "/nope", [("a", "1")]).status_code == 404
    [call] = fake_upstream.calls()
    assert (call.network, call.path, call.params) == (None, "/nope", [("a", "1")])


def test_calls_filter_by_network(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    get(client, fake_upstream, "/api/v1/search", [("query", PAGE)])
    get(client, fake_upstream, "/count/entries", [("url", PAGE), ("url", OTHER)])
    assert [c.path for c in fake_upstream.calls()] == ["/api/v1/search", "/count/entries"]
    [call] = fake_upstream.calls("hatena")
    assert call.params == [("url", PAGE), ("url", OTHER)]


def test_status_fault(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_fault("hatena", Fault("status", status=502))
    assert get(client, fake_upstream, "/count/entry", [("url", PAGE)]).status_code == 502
    assert get(client, fake_upstream, "/api/v1/search", [("query", PAGE)]).status_code == 200


def test_rate_limit_fault(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_fault("hackernews", Fault("rate_limit", retry_after=7))
    resp = get(client, fake_upstream, "/api/v1/search", [("query", PAGE)])
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"


def test_garbage_fault_on_all_networks(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_fault(None, Fault("garbage"))
    hn = get(client, fake_upstream, "/api/v1/search", [("query", PAGE)])
    single = get(client, fake_upstream, "/count/entry", [("url", PAGE)])
    batch = get(client, fake_upstream, "/count/entries", [("url", PAGE), ("url", OTHER)])
    assert hn.status_code == single.status_code == batch.status_code == 200
    with pytest.raises(ParseError):
        HackerNews.parse([PAGE], hn.content)
    with pytest.raises(ParseError):
        Hatena.parse([PAGE], single.content)
    with pytest.raises(ParseError):
        Hatena.parse([PAGE, OTHER], batch.content)


def test_timeout_fault(fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_fault("hatena", Fault("timeout", seconds=2.0))
    with httpx.Client(timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.get(fake_upstream.base_url + "/count/entry", params={"url": PAGE})


def test_timeout_fault_never_answers(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_fault("hatena", Fault("timeout", seconds=0.05))
    with pytest.raises(httpx.RemoteProtocolError):
        get(client, fake_upstream, "/count/entry", [("url", PAGE)])


def test_latency_fault(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_count("hatena", PAGE, 5)
    fake_upstream.set_fault("hatena", Fault("latency", seconds=0.3))
    started = time.monotonic()
    resp = get(client, fake_upstream, "/count/entry", [("url", PAGE)])
    assert time.monotonic() - started >= 0.3
    assert resp.content == b"5"


def test_drip_fault_sends_the_real_answer_a_byte_at_a_time(
    fake_upstream: FakeUpstream, client: httpx.Client
) -> None:
    fake_upstream.set_count("hatena", PAGE, 1234)
    fake_upstream.set_fault("hatena", Fault("drip", seconds=0.05))
    url = fake_upstream.base_url + "/count/entry"
    with client.stream("GET", url, params={"url": PAGE}) as resp:
        chunks = list(resp.iter_raw())
    assert chunks == [b"1", b"2", b"3", b"4"]


def test_reset_fault_resets_the_connection(
    fake_upstream: FakeUpstream, client: httpx.Client
) -> None:
    fake_upstream.set_fault("hatena", Fault("reset"))
    sent = time.monotonic()
    with pytest.raises(httpx.ReadError, match="reset"):
        get(client, fake_upstream, "/count/entry", [("url", PAGE)])
    # Every call records when it came, on the clock the tests read.
    [call] = fake_upstream.calls("hatena")
    assert sent <= call.at <= time.monotonic()


def test_clear_fault_and_reset(fake_upstream: FakeUpstream, client: httpx.Client) -> None:
    fake_upstream.set_count("hatena", PAGE, 5)
    fake_upstream.set_fault(None, Fault("status"))
    fake_upstream.set_fault("hatena", None)
    assert get(client, fake_upstream, "/count/entry", [("url", PAGE)]).content == b"5"
    assert get(client, fake_upstream, "/api/v1/search", [("query", PAGE)]).status_code == 503
    fake_upstream.reset()
    assert fake_upstream.calls() == []
    assert get(client, fake_upstream, "/count/entry", [("url", PAGE)]).content == b""
    assert get(client, fake_upstream, "/api/v1/search", [("query", PAGE)]).status_code == 200


def test_unknown_network_is_rejected(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(ValueError):
        fake_upstream.set_count("myspace", PAGE, 1)
    with pytest.raises(ValueError):
        fake_upstream.set_fault("myspace", Fault("garbage"))


def test_stop_wakes_a_pending_timeout_and_frees_the_port() -> None:
    fake = FakeUpstream()
    fake.start()
    fake.set_fault(None, Fault("timeout", seconds=30))
    base = fake.base_url
    with httpx.Client(timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.get(base + "/count/entry", params={"url": PAGE})
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 5
    with httpx.Client(timeout=1.0) as c, pytest.raises(httpx.ConnectError):
        c.get(base + "/count/entry")
