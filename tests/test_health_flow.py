"""One provider through success, errors, throttling, an outage and recovery, ticked by hand:
at each step the health state, the last hour's tallies and the Prometheus counters agree with
the requests the fake upstream saw."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from aggregator.runtime import Runtime
from aggregator.store import ProviderRecord
from tests.fakeupstream import FakeUpstream, Fault
from tests.test_api import PAGE, ApiFactory, make_api
from tests.test_metrics import BUDGET, scrape

# Imported for pytest: the fixture is found by its name in this module.
__all__ = ["make_api"]

PROVIDERS = {"hackernews": {"enabled": False}, "hatena": {"timeout": 0.3, **BUDGET}}
SCHEDULE = {"retries": 0, "jitter": 0.0, "retry_interval": 600.0, "fresh_interval": 1000.0}
HEALTH = {
    "failing_after": 2,
    "breaker_after": 4,
    "breaker_cooldown": 1.0,
    "min_requests": 2,
    "degraded_share": 0.5,
}


# Ticks stop this long before a deadline, so that the checks after them still fall before it.
MARGIN = 0.3


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.time()) + 0.01)


class Flow:
    """The API, the runtime behind it and the fake network, with the checks of every step."""

    def __init__(self, api: httpx.AsyncClient, runtime: Runtime, fake: FakeUpstream) -> None:
        self.api, self.runtime, self.fake = api, runtime, fake

    def calls(self) -> int:
        return len(self.fake.calls("hatena"))

    async def tick(self) -> None:
        """Make the page due now and run one tick, as the scheduler would."""
        await self.runtime.store.refresh([PAGE], time.time())
        await self.runtime.poller.tick()

    async def tick_until(self, deadline: float) -> None:
        """Tick until shortly before `deadline`, so that no tick races it, nor the checks after."""
        while time.time() < deadline - MARGIN:
            await self.tick()

    async def expect(self, state: str, ok: int, failed: int, neutral: int = 0) -> dict[str, Any]:
        """Check the state and that the API's tallies, the Prometheus counters and the fake's
        log all count the same requests; returns the provider's health."""
        view: dict[str, Any] = (await self.api.get("/api/v1/providers/hatena")).json()
        metrics = await scrape(self.api)
        assert view["state"] == state, view["reason"]
        assert metrics.one_of("flares_provider_state", "hatena") == state
        hour = view["hour"]
        assert (hour["ok"], hour["failed"], hour["neutral"]) == (ok, failed, neutral)
        assert hour["success_ratio"] == (ok / (ok + failed) if ok + failed else None)
        assert metrics.requests("hatena") == {"ok": ok, "failed": failed, "neutral": neutral}
        assert ok + failed + neutral == hour["requests"] == self.calls()
        name = "flares_provider_request_duration_seconds_count"
        assert metrics.value(name, provider="hatena") == self.calls()
        assert metrics.one_of("flares_provider_breaker_state", "hatena") == view["breaker"]["state"]
        left = metrics.value("flares_provider_budget_left", provider="hatena")
        assert left == BUDGET["budget_requests"] - self.calls()
        return view

    async def record(self) -> ProviderRecord:
        return (await self.runtime.store.providers(["hatena"]))["hatena"]

    async def total(self) -> int:
        body = (await self.api.get("/api/v1/counts", params={"url": PAGE})).json()
        total: int = body["total"]
        return total


async def test_success_errors_throttling_outage_recovery(
    make_api: ApiFactory, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_count("hatena", PAGE, 5)
    async with make_api(providers=PROVIDERS, schedule=SCHEDULE, health=HEALTH) as (api, runtime):
        flow = Flow(api, runtime, fake_upstream)
        await runtime.store.track(PAGE, time.time())
        pending = await flow.expect("pending", ok=0, failed=0)
        assert pending["reason"] == "no request made yet"

        # Success.
        for _ in range(2):
            await flow.tick()
        ok = await flow.expect("ok", ok=2, failed=0)
        assert ok["since"] is not None and ok["last_error"] is None
        assert await flow.total() == 5

        # Errors: one is not yet failing (nor degraded: 1 of 3 is under half), two are.
        fake_upstream.set_fault("hatena", Fault("status", status=503))
        await flow.tick()
        wobbly = await flow.expect("ok", ok=2, failed=1)
        assert wobbly["reason"] == "1 recent failure(s), not yet failing"
        await flow.tick()
        failing = await flow.expect("failing", ok=2, failed=2)
        assert failing["reason"] == "the last 2 requests failed"
        assert failing["since"] is not None
        assert failing["last_error"] == {
            "kind": "http",
            "status": 503,
            "message": "HTTP 503 Service Unavailable",
        }

        # Throttling: a 429 with Retry-After, then not one request until the wait is over.
        fake_upstream.set_fault("hatena", Fault("rate_limit", retry_after=1))
        await flow.tick()
        throttled = await flow.expect("throttled", ok=2, failed=2, neutral=1)
        assert throttled["since"] is not None
        assert (throttled["last_error"]["kind"], throttled["last_error"]["status"]) == (
            "throttled",
            429,
        )
        until = (await flow.record()).throttled_until
        assert until is not None and until > time.time()
        calls = flow.calls()
        await flow.tick_until(until)
        assert flow.calls() == calls
        await flow.expect("throttled", ok=2, failed=2, neutral=1)

        # An outage: two more timeouts make four failures in a row and open the breaker...
        fake_upstream.set_fault("hatena", Fault("timeout", seconds=1.0))
        await sleep_until(until)
        for _ in range(2):
            await flow.tick()
        opened = await flow.expect("circuit-open", ok=2, failed=4, neutral=1)
        assert opened["breaker"]["state"] == "open"
        assert opened["last_error"]["kind"] == "timeout"
        # ...which sends nothing during its cool-down...
        reopen = (await flow.record()).breaker_until
        assert reopen is not None
        calls = flow.calls()
        await flow.tick_until(reopen)
        assert flow.calls() == calls
        await flow.expect("circuit-open", ok=2, failed=4, neutral=1)
        await sleep_until(reopen)
        half = await flow.expect("circuit-open", ok=2, failed=4, neutral=1)
        assert half["breaker"]["state"] == "half-open"
        # ...then lets one probe out, which times out and opens it again.
        await flow.tick()
        again = await flow.expect("circuit-open", ok=2, failed=5, neutral=1)
        assert again["breaker"]["state"] == "open"
        assert again["breaker"]["since"] == opened["breaker"]["since"]
        assert await flow.total() == 5, "no failure takes a count away"

        # Recovery: the next probe closes the breaker; the hour still holds 5 failures of 8...
        fake_upstream.set_fault("hatena", None)
        reopen = (await flow.record()).breaker_until
        assert reopen is not None
        await sleep_until(reopen)
        await flow.tick()
        mending = await flow.expect("degraded", ok=3, failed=5, neutral=1)
        assert mending["breaker"]["state"] == "closed"
        assert mending["reason"].startswith("5 of 8 requests in the last hour failed")
        # ...until successes make up half of it.
        for _ in range(2):
            await flow.tick()
        recovered = await flow.expect("ok", ok=5, failed=5, neutral=1)
        assert recovered["reason"] == "the last request succeeded"
        assert recovered["hour"]["success_ratio"] == 0.5
