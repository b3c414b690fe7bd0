"""Every provider against a network that fails in every way: no served count moves down or to an
absurd value, health names what happened, and a Retry-After is waited out before the next call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from aggregator.runtime import Runtime
from providers.registry import discover
from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)
from tests.fakeupstream import FakeUpstream, Fault
from tests.provider_checks import SECRETS, spec_of
from tests.test_api import ApiFactory, make_api

__all__ = ["make_api"]

PAGE = "https://example.com/post"
STORED = 1_000
# Each request's deadline; a drip of one byte per DRIP seconds is never done within it, while
# each single read is quick: only a deadline on the whole answer ends it.
TIMEOUT, DRIP = 0.5, 0.3
RETRY_AFTER = 1
# The plausibility rule is tried at a bound the parsers do not have (theirs is 10^12).
MAX_COUNT = 10**6
# Answers some networks really give for no shares: a score that sank below zero (Hacker
# News points, Reddit scores), an empty body (Hatena's single-URL endpoint). Bluesky answers
# with a list of posts, which cannot be shorter than empty.
READ_AS_ZERO = {
    "negative count": {"hackernews", "reddit", "bluesky"},
    "empty body": {"hatena"},
}


@dataclass(frozen=True)
class Case:
    """One misbehaviour: a fault or a count the network answers, and the error health shows
    (None: the answer was read, and the stored count stays above it)."""

    name: str
    fault: Fault | None = None
    count: int = STORED
    kind: str | None = None
    status: int | None = None


CASES = (
    Case("500", Fault("status", status=500), kind="http", status=500),
    Case("timeout", Fault("timeout", seconds=TIMEOUT + 1), kind="timeout"),
    Case("slow drip", Fault("drip", seconds=DRIP), kind="timeout"),
    Case("reset", Fault("reset"), kind="connect"),
    Case("html page", Fault("garbage"), kind="parse"),
    Case("empty body", Fault("answer", status=200, body=b""), kind="parse"),
    Case("malformed json", Fault("answer", status=200, body=b'{"count": 12, "url'), kind="parse"),
    Case("negative count", count=-5, kind="parse"),
    Case("count of 10^15", count=10**15, kind="parse"),
    Case("count above max_count", count=MAX_COUNT * 10, kind="parse"),
    Case("lower count", count=STORED - 1),
)


def settings_for(name: str, fake: FakeUpstream) -> dict[str, Any]:
    """Only `name` on, with whatever credentials its fake takes, counted from its API."""
    conf = {**SECRETS, **spec_of(discover()[name]).settings}
    own = {"enabled": True, "timeout": TIMEOUT, "source": "api", **conf}
    return {
        "providers": {n: own if n == name else {"enabled": False} for n in discover()},
        # The faults come in a row: the breaker would rightly stop calling after a few.
        "health": {"failing_after": 2, "breaker_after": 100},
        "max_count": MAX_COUNT,
    }


async def fetch(runtime: Runtime) -> None:
    """Make the page due for its network and run one tick over it."""
    await runtime.store.refresh([PAGE], time.time())
    assert await runtime.poller.tick() == 1


async def served(api: httpx.AsyncClient, name: str) -> int | None:
    response = await api.get("/api/v1/counts", params={"url": PAGE})
    assert response.status_code == 200, response.text
    count: int | None = response.json()["networks"][name]["count"]
    return count


async def health(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/providers/{name}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def check_case(
    api: httpx.AsyncClient, runtime: Runtime, fake: FakeUpstream, name: str, case: Case
) -> None:
    if name in READ_AS_ZERO.get(case.name, ()):
        case = Case(case.name, case.fault, case.count)
    fake.set_fault(name, case.fault)
    fake.set_count(name, PAGE, case.count)
    hour = (await health(api, name))["hour"]
    await fetch(runtime)
    fake.set_fault(name, None)
    fake.set_count(name, PAGE, STORED)
    assert await served(api, name) == STORED, case.name
    view = await health(api, name)
    # The one request this fetch made is in the hour's tally: as a success, or as a failure.
    ok, failed = view["hour"]["ok"] - hour["ok"], view["hour"]["failed"] - hour["failed"]
    assert (ok, failed) == ((1, 0) if case.kind is None else (0, 1)), case.name
    if case.kind is None:
        record = await runtime.store.get(PAGE)
        assert record is not None
        # What the network said is kept beside the count it never lowers.
        said = 0 if case.fault is not None else max(case.count, 0)
        assert record.networks[name].seen == said, case.name
        return
    error = view["last_error"]
    assert error is not None, case.name
    assert (error["kind"], error["status"]) == (case.kind, case.status), (case.name, error)


async def check_retry_after(
    api: httpx.AsyncClient, runtime: Runtime, fake: FakeUpstream, name: str
) -> None:
    """A 429 stops the calls for Retry-After seconds; then they resume by themselves."""
    fake.set_fault(name, Fault("rate_limit", retry_after=RETRY_AFTER))
    await fetch(runtime)
    fake.set_fault(name, None)
    limited = fake.calls(name)[-1]
    view = await health(api, name)
    assert (view["last_error"]["kind"], view["last_error"]["status"]) == ("throttled", 429)
    if view["status"] != "retired":
        assert view["state"] == "throttled"
    assert await served(api, name) == STORED
    while not [c for c in fake.calls(name) if c.at > limited.at]:
        assert time.monotonic() < limited.at + RETRY_AFTER + 5, "calls never resumed"
        await fetch(runtime)
    [resumed, *_] = [c for c in fake.calls(name) if c.at > limited.at]
    assert resumed.at - limited.at >= RETRY_AFTER
    assert await served(api, name) == STORED


@pytest.mark.parametrize("name", sorted(discover()))
async def test_no_fault_lowers_a_count_and_health_names_each(
    name: str, make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    async with make_api(**settings_for(name, fake_upstream)) as (api, runtime):
        await runtime.store.track(PAGE, time.time())
        fake_upstream.set_count(name, PAGE, STORED)
        await fetch(runtime)
        assert await served(api, name) == STORED
        for case in CASES:
            await check_case(api, runtime, fake_upstream, name, case)
        await check_retry_after(api, runtime, fake_upstream, name)
