"""The poll loop: claim due URLs from Redis, fetch them through every active provider, store."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.config import ScheduleSettings, Settings
from aggregator.fetch import Executor, throttle_wait
from aggregator.health import fingerprint
from aggregator.store import Claim, Store
from aggregator.variants import Gathering, borrowed, spellings, unheld
from providers.base import Observation, Problem, Provider

log = logging.getLogger(__name__)
HELD = frozenset({"deferred", "throttled", "rejected"})


def refresh_interval(age: float, conf: ScheduleSettings) -> float:
    """Seconds until the next refresh of a URL first tracked `age` seconds ago."""
    if age < conf.fresh_age:
        return conf.fresh_interval
    if age < conf.recent_age:
        return conf.recent_interval
    return conf.old_interval


def owes(fetched_at: float | None, interval: float, now: float) -> bool:
    """Whether a provider owes a URL a fetch: never fetched, or not within half its interval.

    A URL comes back early when some provider was held back; the others, which answered
    minutes ago, skip it then instead of spending their budget twice.
    """
    return fetched_at is None or now - fetched_at >= interval / 2


@dataclass
class Round:
    """What one provider's run over the claimed URLs means for their next due times."""

    moved: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    # URLs the gate held back, and when the provider may be asked again.
    deferred: dict[str, float] = field(default_factory=dict)


class Poller:
    """One tick of work: every process that runs a scheduler shares the queue through Redis."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        providers: Mapping[str, type[Provider]],
        settings: Settings,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._executor = executor
        self._providers = providers
        self._settings = settings
        self._conf = settings.schedule
        self._busy = asyncio.Lock()
        self._stopping = False
        self._rng = rng or random.Random()

    @property
    def provider_names(self) -> list[str]:
        """The providers this poller calls."""
        return list(self._providers)

    async def tick(self) -> int:
        """Claim a batch of due URLs, refresh them and return how many were claimed."""
        async with self._busy:
            return 0 if self._stopping else await self._tick()

    async def drain(self) -> int:
        """Tick again while ticks come back full, so a backlog is not capped at one claim per
        period; stop after half a lease so the scheduler's heartbeat and shutdown stay timely."""
        deadline = time.monotonic() + self._conf.lease_seconds / 2
        total = claimed = await self.tick()
        while claimed == self._conf.claim_size and time.monotonic() < deadline:
            claimed = await self.tick()
            total += claimed
        return total

    async def stop(self) -> None:
        """Claim nothing more and wait for the tick in hand, so that a shutdown cuts no batch in
        half (the scheduler's shutdown cancels a running job: stop the poller first)."""
        self._stopping = True
        async with self._busy:
            return

    async def _tick(self) -> int:
        now = time.time()
        await self._store.beat(ttl=self._conf.tick_seconds * 3 + 5)
        claimed = await self._store.claim_due(
            now,
            self._conf.claim_size,
            lease_until=now + self._conf.lease_seconds,
            networks=self.provider_names,
        )
        if not claimed:
            return 0
        urls = sorted(claimed)
        intervals = {u: refresh_interval(now - claimed[u].tracked_at, self._conf) for u in urls}
        asked = {
            name: {
                u: spellings(u, claimed[u].aliases, self._settings, provider)
                for u in urls
                if owes(claimed[u].fetched[name], intervals[u], now)
            }
            for name, provider in self._providers.items()
        }
        variants = {
            s
            for pages in asked.values()
            for u, spelled in pages.items()
            for s in borrowed(u, claimed[u].aliases, spelled)
        }
        # Only where variants are on: a round trip to learn which are pages of their own.
        held = await self._store.held(variants) if variants else set()
        rounds = await asyncio.gather(
            *(
                self._refresh(
                    provider,
                    {
                        u: unheld(u, claimed[u].aliases, spelled, held)
                        for u, spelled in asked[name].items()
                    },
                )
                for name, provider in self._providers.items()
            )
        )
        await self._store.reschedule(self._next_due(claimed, intervals, rounds))
        return len(claimed)

    def _next_due(
        self, claimed: Mapping[str, Claim], intervals: Mapping[str, float], rounds: list[Round]
    ) -> dict[str, float]:
        """Next due time per URL: sooner where counts moved, retry where a fetch failed or
        was held back, jittered so that URLs tracked together drift apart."""
        conf = self._conf
        moved = set().union(*(r.moved for r in rounds))
        failed = set().union(*(r.failed for r in rounds))
        done = time.time()
        due: dict[str, float] = {}
        for url in claimed:
            interval = intervals[url]
            if url in moved:
                # Sooner, but not below the floor, and never later than without the move.
                interval = min(interval, max(conf.min_interval, interval * conf.moved_factor))
            interval *= 1 + self._rng.uniform(-conf.jitter, conf.jitter)
            if url in failed:
                interval = min(interval, conf.retry_interval)
            waits = [r.deferred[url] - done for r in rounds if url in r.deferred]
            if waits:
                interval = min(interval, max(min(waits), conf.tick_seconds))
            due[url] = done + interval
        return due

    async def _refresh(self, provider: type[Provider], pages: Mapping[str, list[str]]) -> Round:
        """Ask one network for every spelling of the pages (each spelling once) and store each
        page's folded count once all its spellings answered; if any did not, none counts."""
        if not pages:
            return Round()
        result = Round()
        gathering = Gathering(pages)

        async def store(observations: dict[str, Observation]) -> None:
            done = gathering.add(observations)
            if done:
                result.moved |= await self._store.merge_counts(provider.name, done, time.time())

        outcome = await self._executor.run(provider, gathering.asked, store)
        now = time.time()
        if outcome.problem is not None:
            await self._heed(provider, outcome.problem, now)
        errors = outcome.errors
        failing = [s for s, e in errors.items() if e.kind not in HELD]
        result.failed = gathering.pages_of(failing)
        # Held back or told to wait: nothing failed, the pages stay owed.
        held = gathering.pages_of(list(errors)) - result.failed
        if held and outcome.wait is not None:
            result.deferred = dict.fromkeys(held, now + outcome.wait)
        if result.failed:
            await self._store.mark_failed(provider.name, result.failed, now)
            first = errors[failing[0]]
            log.warning(
                "%s: %d URL(s) got no data: %s", provider.name, len(result.failed), first.message
            )
        return result

    async def _heed(self, provider: type[Provider], problem: Problem, now: float) -> None:
        """Stop calling a network that throttles us or refused our credentials."""
        if problem.kind == "throttled":
            wait = throttle_wait(provider, problem)
            await self._store.throttle(provider.name, now + wait, now)
            log.warning("%s: throttled for %.0f s: %s", provider.name, wait, problem.message)
        else:
            await self._store.reject(
                provider.name, fingerprint(provider, self._settings), problem.message
            )
            log.error(
                "%s: %s; not called until its credentials change", provider.name, problem.message
            )


def _not_a_skipped_tick(record: logging.LogRecord) -> bool:
    # A drain outlasting the tick period makes APScheduler skip the next run, by design (one
    # tick at a time); it would log a warning for every period of a long drain.
    return "maximum number of running instances reached" not in record.getMessage()


def start_scheduler(poller: Poller, tick_seconds: float) -> AsyncIOScheduler:
    """Run the poller's tick now and then periodically on the running loop, never two at once."""
    apscheduler_log = logging.getLogger("apscheduler.scheduler")
    if _not_a_skipped_tick not in apscheduler_log.filters:
        apscheduler_log.addFilter(_not_a_skipped_tick)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        poller.drain,
        "interval",
        seconds=tick_seconds,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
        id="tick",
    )
    scheduler.start()
    return scheduler
