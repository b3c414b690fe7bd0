"""URL variants and alias URLs: fetched per network, folded into one count per page."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from aggregator.cli import app as cli
from aggregator.config import Settings, SiteSettings
from aggregator.runtime import Runtime
from aggregator.store import Store
from aggregator.urls import VARIANT_KINDS, canonical, variants
from aggregator.variants import Gathering, fold, spellings
from providers.base import Observation
from providers.hackernews import HackerNews
from providers.pinterest import Pinterest
from tests.fakeupstream import FakeUpstream, Fault
from tests.test_api import ApiFactory, assert_error, make_api
from tests.test_cli import served
from tests.test_scheduling import RuntimeFactory, make_runtime

__all__ = ["make_api", "make_runtime", "served"]

PAGE = "https://example.com/post"
# A host name of 250 characters: with www. it would be too long; without, it has room.
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 55, "de"])


# --- variants of one URL ---


def test_every_combination_of_a_page_canonical_first() -> None:
    assert variants(PAGE, VARIANT_KINDS) == [
        PAGE,
        "http://example.com/post",
        "https://www.example.com/post",
        "http://www.example.com/post",
        "https://example.com/post/",
        "http://example.com/post/",
        "https://www.example.com/post/",
        "http://www.example.com/post/",
    ]
    assert variants("https://www.example.com/a/?x=1", {"www", "slash"}) == [
        "https://www.example.com/a/?x=1",
        "https://example.com/a/?x=1",
        "https://www.example.com/a?x=1",
        "https://example.com/a?x=1",
    ]
    assert variants(PAGE, ()) == [PAGE]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # The root has no spelling without its slash.
        ("https://example.com/", ["https://example.com/", "https://www.example.com/"]),
        # An IP address and a bare name have no www. spelling.
        ("https://192.0.2.1/a", ["https://192.0.2.1/a", "https://192.0.2.1/a/"]),
        ("http://localhost/a", ["http://localhost/a", "http://localhost/a/"]),
        ("https://[2001:db8::1]/a", ["https://[2001:db8::1]/a", "https://[2001:db8::1]/a/"]),
        # An explicit port is another server under the other scheme.
        (
            "https://example.com:8443/",
            ["https://example.com:8443/", "https://www.example.com:8443/"],
        ),
        (f"https://{LONGEST}/", [f"https://{LONGEST}/"]),
        (f"https://www.{LONGEST[4:]}/", [f"https://www.{LONGEST[4:]}/", f"https://{LONGEST[4:]}/"]),
        # Toggling www. or the slash twice must come back where it began.
        ("https://www.www.example.com/a//", ["https://www.www.example.com/a//"]),
    ],
)
def test_kinds_that_do_not_apply_are_skipped(url: str, expected: list[str]) -> None:
    found = variants(url, {"www", "slash"})
    assert found == expected
    with_scheme = variants(url, VARIANT_KINDS)
    assert len(with_scheme) == (len(found) if ":8443" in url else 2 * len(found))


label = st.text("abcxyz019-", min_size=1, max_size=8).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
host = st.one_of(
    st.builds(
        lambda www, labels, tld: ("www." if www else "") + ".".join([*labels, tld]),
        st.booleans(),
        st.lists(label, min_size=1, max_size=3),
        st.sampled_from(["com", "org", "de"]),
    ),
    st.sampled_from(["192.0.2.7", "www.www.example.com", "[2001:db8::1]", LONGEST, LONGEST[4:]]),
)
path = st.lists(st.text("ab%2F", max_size=4), max_size=4).map(lambda p: "/" + "/".join(p))
page_url = st.builds(
    lambda scheme, h, port, p, q: f"{scheme}://{h}{port}{p}{q}",
    st.sampled_from(["http", "https"]),
    host,
    st.sampled_from(["", ":8080", ":443"]),
    path,
    st.sampled_from(["", "?b=2&a=1", "?utm_source=x&id=3"]),
)


@given(page_url, st.sets(st.sampled_from(VARIANT_KINDS)))
def test_variants_of_variants_meet(raw: str, kinds: set[str]) -> None:
    url = canonical(raw)
    found = variants(url, kinds)
    assert found[0] == url
    assert len(found) == len(set(found))
    # Each kind that applies doubles the spellings: none is lost or made twice.
    assert len(found) in {2**k for k in range(len(kinds) + 1)}
    for variant in found:
        assert canonical(variant) == variant
        again = variants(variant, kinds)
        assert again[0] == variant
        assert set(again) == set(found)


# --- settings per site ---


def test_site_settings_default_and_most_specific_override() -> None:
    settings = Settings(
        variants={"scheme": True},
        sites={"Example.COM.": {"www": True}, "blog.example.com": {"scheme": False}},
    )
    assert settings.site("other.org") == SiteSettings(scheme=True)
    assert settings.site("example.com") == SiteSettings(scheme=True, www=True)
    assert settings.site("shop.example.com") == SiteSettings(scheme=True, www=True)
    # The most specific domain wins; what it leaves unset comes from the default.
    assert settings.site("a.blog.example.com") == SiteSettings()
    assert settings.site("badexample.com") == SiteSettings(scheme=True)
    assert Settings().site("example.com") == SiteSettings()


def test_site_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARES_VARIANTS__SLASH", "true")
    monkeypatch.setenv("FLARES_SITES", '{"example.com": {"www": true}}')
    settings = Settings()
    assert settings.site("example.com") == SiteSettings(www=True, slash=True)
    assert settings.site("example.org") == SiteSettings(slash=True)


def test_spellings_per_network_and_alias_site() -> None:
    settings = Settings(variants={"scheme": True}, sites={"old.example.net": {"slash": True}})
    alias = "https://old.example.net/p"
    assert spellings(PAGE, [alias], settings, HackerNews) == [
        PAGE,
        "http://example.com/post",
        alias,
        "http://old.example.net/p",
        "https://old.example.net/p/",
        "http://old.example.net/p/",
    ]
    # Pinterest counts http and https as one page: never asked for both.
    assert spellings(PAGE, [alias], settings, Pinterest) == [
        PAGE,
        alias,
        "https://old.example.net/p/",
    ]
    # An alias that is a variant of the page is asked for once.
    assert spellings(PAGE, ["http://example.com/post"], settings, HackerNews) == [
        PAGE,
        "http://example.com/post",
    ]


# --- folding answers ---


def test_fold_sums_distinct_numbers_and_their_parts() -> None:
    answers = [
        Observation(10, {"comments": 2}, {"2026-11-01": 4}),
        Observation(10, {"comments": 7}, {"2026-11-01": 9}),
        Observation(3, {"comments": 1}, {"2026-11-01": 1, "2026-11-02": 2}),
        Observation(0),
    ]
    folded = fold(answers)
    assert folded.count == 13
    # The second 10 is the same page to the network: its parts are not added either.
    assert folded.parts == {"comments": 3}
    assert folded.days == {"2026-11-01": 5, "2026-11-02": 2}
    assert fold([Observation(4)]) == Observation(4)


def test_gathering_completes_a_page_only_with_every_spelling() -> None:
    shared = "http://example.com/post"
    gathering = Gathering({PAGE: [PAGE, shared], "https://example.com/b": [shared]})
    assert gathering.asked == [PAGE, shared]
    assert gathering.add({shared: Observation(2)}) == {"https://example.com/b": Observation(2)}
    assert gathering.add({PAGE: Observation(5)}) == {PAGE: Observation(7)}
    assert gathering.pages_of([shared]) == {PAGE, "https://example.com/b"}


# --- the poll loop over the fake upstream ---


def set_counts(fake: FakeUpstream, network: str, counts: dict[str, int]) -> None:
    for url, count in counts.items():
        fake.set_count(network, url, count)


async def counts_after_tick(runtime: Runtime, url: str = PAGE) -> dict[str, int | None]:
    await runtime.store.refresh([url], time.time())
    await runtime.poller.tick()
    record = await runtime.store.get(url)
    assert record is not None
    return {name: net.count for name, net in record.networks.items()}


async def test_variants_summed_except_identical_numbers(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    http = "http://example.com/post"
    set_counts(fake_upstream, "hackernews", {PAGE: 10, http: 10})
    set_counts(fake_upstream, "hatena", {PAGE: 4, http: 6})
    async with make_runtime(variants={"scheme": True}) as runtime:
        await runtime.store.track(PAGE, time.time())
        assert await counts_after_tick(runtime) == {"hackernews": 10, "hatena": 10}
    asked = [q for c in fake_upstream.calls("hackernews") for k, q in c.params if k == "query"]
    assert sorted(asked) == [http, PAGE]
    # Hatena batches: both spellings went out in one request.
    [batch] = fake_upstream.calls("hatena")
    assert sorted(v for k, v in batch.params if k == "url") == [http, PAGE]


async def test_variants_off_by_default_and_per_site(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    other = "https://other.org/a"
    set_counts(fake_upstream, "hackernews", {"https://www.other.org/a": 5, PAGE + "/": 5})
    async with make_runtime(sites={"other.org": {"www": True}}) as runtime:
        await runtime.store.track_many([PAGE, other], time.time())
        await runtime.poller.tick()
        page, site = await runtime.store.get(PAGE), await runtime.store.get(other)
    assert page is not None and site is not None
    assert page.networks["hackernews"].count == 0
    assert site.networks["hackernews"].count == 5
    assert len(fake_upstream.calls("hackernews")) == 3


async def test_pinterest_never_asked_for_the_other_scheme(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    set_counts(fake_upstream, "pinterest", {PAGE: 2, PAGE + "/": 3, "http://example.com/post": 100})
    providers = {"pinterest": {"enabled": True}, "hatena": {"enabled": False}}
    async with make_runtime(variants={"scheme": True, "slash": True}, providers=providers) as rt:
        await rt.store.track(PAGE, time.time())
        counts = await counts_after_tick(rt)
    assert counts["pinterest"] == 5
    asked = sorted(v for c in fake_upstream.calls("pinterest") for k, v in c.params if k == "url")
    assert asked == [PAGE, PAGE + "/"]
    # Hacker News keys by the exact string: it gets all four.
    assert len(fake_upstream.calls("hackernews")) == 4


async def test_alias_count_is_added_and_shown(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    old = "https://example.com/2019/old-slug"
    set_counts(fake_upstream, "hackernews", {PAGE: 7, old: 30})
    fake_upstream.set_count("hatena", old, 4)
    async with make_runtime() as runtime:
        store = runtime.store
        await store.track(PAGE, time.time())
        assert await counts_after_tick(runtime) == {"hackernews": 7, "hatena": 0}
        assert await store.set_aliases(PAGE, [old]) == ()
        assert await counts_after_tick(runtime) == {"hackernews": 37, "hatena": 4}
        record = await store.get(PAGE)
        assert record is not None and record.aliases == (old,)
        # The alias has no record of its own: its shares are counted once, with the page.
        assert await store.get(old) is None


async def test_a_variant_that_is_a_page_or_an_alias_counts_there_alone(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    """`/post` and `/post/` both tracked with slash variants on: each counts its own spelling,
    not the other's too; nor does a page count its variant that is another page's alias."""
    other = "https://example.com/b"
    set_counts(fake_upstream, "hackernews", {PAGE: 5, PAGE + "/": 3, other: 11, other + "/": 20})
    providers = {"hatena": {"enabled": False}}
    async with make_runtime(variants={"slash": True}, providers=providers) as runtime:
        store = runtime.store
        await store.track_many([PAGE, PAGE + "/", other], time.time())
        await store.set_aliases(PAGE, [other + "/"])
        await runtime.poller.tick()
        records = await store.get_many([PAGE, PAGE + "/", other])
    counts = {url: r.networks["hackernews"].count for url, r in records.items() if r}
    # The page's own alias counts with it, that alias's variant (a page) does not.
    assert counts == {PAGE: 5 + 20, PAGE + "/": 3, other: 11}
    asked = [q for c in fake_upstream.calls("hackernews") for k, q in c.params if k == "query"]
    assert sorted(asked) == sorted([PAGE, PAGE + "/", other, other + "/"])


async def test_a_failed_variant_changes_nothing(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    http = "http://example.com/post"
    set_counts(fake_upstream, "hackernews", {PAGE: 10, http: 2})
    async with make_runtime(variants={"scheme": True}) as runtime:
        store = runtime.store
        await store.track(PAGE, time.time())
        assert (await counts_after_tick(runtime))["hackernews"] == 12

        fake_upstream.set_count("hackernews", PAGE, 50)
        fake_upstream.set_url_fault("hackernews", http, Fault("status", status=500))
        before = time.time()
        assert (await counts_after_tick(runtime))["hackernews"] == 12
        record = await store.get(PAGE)
        assert record is not None
        assert record.networks["hackernews"].failed_at is not None
        due = await store.due_at(PAGE)
        assert due is not None and due <= time.time() + runtime.settings.schedule.retry_interval
        assert due >= before

        fake_upstream.set_url_fault("hackernews", http, None)
        assert (await counts_after_tick(runtime))["hackernews"] == 52


async def test_a_held_variant_keeps_the_page_owed(
    make_runtime: RuntimeFactory, fake_upstream: FakeUpstream
) -> None:
    set_counts(fake_upstream, "hackernews", {PAGE: 10, "http://example.com/post": 10})
    # One request a minute: the second spelling is held back by the budget.
    providers = {"hackernews": {"budget_requests": 1, "budget_window": 60.0}}
    async with make_runtime(variants={"scheme": True}, providers=providers) as runtime:
        store = runtime.store
        await store.track(PAGE, time.time())
        assert (await counts_after_tick(runtime)).get("hackernews") is None
        record = await store.get(PAGE)
        assert record is not None
        net = record.networks.get("hackernews")
        assert net is None or (net.failed_at is None and net.fetched_at is None)
    assert len(fake_upstream.calls("hackernews")) == 1


# --- the admin API and the CLI ---


async def test_aliases_api(make_api: ApiFactory) -> None:
    headers = {"Authorization": "Bearer s3cret"}
    async with make_api(admin_key="s3cret", insecure_open=False) as (api, _):
        await api.post("/api/v1/urls", json={"url": PAGE}, headers=headers)
        body = {"url": PAGE, "aliases": ["HTTP://Example.com/old?utm_source=x", "https://b.org/p"]}
        anonymous = await api.put("/api/v1/aliases", json=body)
        put = await api.put("/api/v1/aliases", json=body, headers=headers)
        counts = await api.get("/api/v1/counts", params={"url": PAGE})
        shown = await api.get("/api/v1/aliases", params={"url": PAGE})
        one = {"url": PAGE, "alias": "https://b.org/p"}
        removed = await api.delete("/api/v1/aliases", params=one, headers=headers)
        cleared = await api.delete("/api/v1/aliases", params={"url": PAGE}, headers=headers)
        audit = await api.get("/api/v1/audit", headers=headers)
    assert_error(anonymous, 401, "admin key required")
    assert put.status_code == 200, put.text
    aliases = ["http://example.com/old", "https://b.org/p"]
    assert put.json() == {"url": PAGE, "aliases": aliases, "previous": []}
    assert counts.json()["aliases"] == aliases
    assert shown.json()["aliases"] == aliases
    assert removed.json()["aliases"] == ["http://example.com/old"]
    assert cleared.json() == {"url": PAGE, "aliases": [], "previous": ["http://example.com/old"]}
    entries = [(e["action"], e["target"]) for e in audit.json()["entries"]]
    assert entries[:3] == [
        ("aliases.delete", PAGE),
        ("aliases.delete", PAGE),
        ("aliases.set", PAGE),
    ]


async def test_aliases_api_errors(make_api: ApiFactory) -> None:
    other = "https://example.com/other"
    async with make_api() as (api, _):
        await api.post("/api/v1/urls/bulk", json={"urls": [PAGE, other]})
        await api.put("/api/v1/aliases", json={"url": other, "aliases": ["https://c.org/x"]})
        answers = {
            "bad alias": await api.put("/api/v1/aliases", json={"url": PAGE, "aliases": ["ftp:x"]}),
            "itself": await api.put(
                "/api/v1/aliases", json={"url": PAGE, "aliases": [PAGE + "#frag"]}
            ),
            "no page": await api.put(
                "/api/v1/aliases", json={"url": "https://example.com/none", "aliases": []}
            ),
            "a page": await api.put("/api/v1/aliases", json={"url": PAGE, "aliases": [other]}),
            "taken": await api.put(
                "/api/v1/aliases", json={"url": PAGE, "aliases": ["https://c.org/x"]}
            ),
            "too many": await api.put(
                "/api/v1/aliases",
                json={"url": PAGE, "aliases": [f"https://c.org/{n}" for n in range(21)]},
            ),
            "not a list": await api.put("/api/v1/aliases", json={"url": PAGE, "aliases": "x"}),
            "not an alias": await api.delete(
                "/api/v1/aliases", params={"url": PAGE, "alias": "https://c.org/x"}
            ),
            "unknown page": await api.get("/api/v1/aliases", params={"url": "https://x.org/"}),
        }
    assert "alias ftp:x" in assert_error(answers["bad alias"], 400, "invalid url")["detail"]
    assert_error(answers["itself"], 400, "alias is the page")
    assert_error(answers["no page"], 404, "not tracked")
    assert "record of its own" in assert_error(answers["a page"], 409, "alias taken")["detail"]
    assert other in assert_error(answers["taken"], 409, "alias taken")["detail"]
    assert_error(answers["too many"], 400, "invalid request")
    assert_error(answers["not a list"], 400, "invalid request")
    assert_error(answers["not an alias"], 404, "not an alias")
    assert_error(answers["unknown page"], 404, "not tracked")


@pytest.fixture
def admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin key in the environment: the served app's and the command's settings read it."""
    monkeypatch.setenv("FLARES_ADMIN_KEY", "s3cret")


async def test_alias_command(admin_key: None, served: str, store: Store) -> None:
    await store.track(PAGE, time.time())
    runner = CliRunner()
    added = runner.invoke(cli, ["alias", PAGE, "https://example.com/old", "--api", served])
    more = runner.invoke(cli, ["alias", PAGE, "https://example.com/older", "--api", served])
    shown = runner.invoke(cli, ["alias", PAGE, "--api", served])
    removed = runner.invoke(
        cli, ["alias", PAGE, "https://example.com/old", "--remove", "--api", served]
    )
    refused = runner.invoke(cli, ["alias", PAGE, PAGE + "/x", "--api", served, "--remove"])
    assert added.exit_code == 0, added.output
    assert more.exit_code == 0, more.output
    assert "2 alias(es)" in shown.stdout
    assert "https://example.com/older" in shown.stdout
    assert removed.exit_code == 0
    record = await store.get(PAGE)
    assert record is not None and record.aliases == ("https://example.com/older",)
    assert refused.exit_code == 1
    assert "not an alias" in refused.stderr
