"""The poll loop: claim due URLs from Redis, fetch them through every active provider, store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.config import ScheduleSettings, Settings
from aggregator.fetch import Executor, FetchOutcome
from aggregator.health import fingerprint, is_rejected, is_throttled
from aggregator.store import Store
from providers.base import Problem, Provider

log = logging.getLogger(__name__)


def refresh_interval(age: float, conf: ScheduleSettings) -> float:
    """Seconds until the next refresh of a URL first tracked `age` seconds ago."""
    if age < conf.fresh_age:
        return conf.fresh_interval
    if age < conf.recent_age:
        return conf.recent_interval
    return conf.old_interval


class Poller:
    """One tick of work: every process that runs a scheduler shares the queue through Redis."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        providers: Mapping[str, type[Provider]],
        settings: Settings,
    ) -> None:
        self._store = store
        self._executor = executor
        self._providers = providers
        self._settings = settings
        self._conf = settings.schedule
        self._busy = asyncio.Lock()

    @property
    def provider_names(self) -> list[str]:
        """The providers this poller calls."""
        return list(self._providers)

    async def tick(self) -> int:
        """Claim a batch of due URLs, refresh them and return how many were claimed."""
        async with self._busy:
            return await self._tick()

    async def idle(self) -> None:
        """Wait until no tick is running, so a shutdown does not cut a batch in half."""
        async with self._busy:
            return

    async def _tick(self) -> int:
        now = time.time()
        await self._store.beat(ttl=self._conf.tick_seconds * 3 + 5)
        claimed = await self._store.claim_due(
            now, self._conf.claim_size, lease_until=now + self._conf.lease_seconds
        )
        if not claimed:
            return 0
        urls = sorted(claimed)
        records = await self._store.providers(list(self._providers))
        callable_now = [
            provider
            for name, provider in self._providers.items()
            if not is_throttled(records[name], now)
            and not is_rejected(provider, self._settings, records[name])
        ]
        outcomes = await asyncio.gather(*(self._refresh(p, urls) for p in callable_now))
        failed = {u for outcome in outcomes for u in outcome.errors}
        if len(callable_now) < len(self._providers):
            # A provider that must wait still owes these URLs a fetch: come back soon, not in hours.
            failed.update(urls)
        done = time.time()
        await self._store.reschedule(
            {
                url: done
                + (
                    min(self._conf.retry_interval, refresh_interval(done - tracked_at, self._conf))
                    if url in failed
                    else refresh_interval(done - tracked_at, self._conf)
                )
                for url, tracked_at in claimed.items()
            }
        )
        return len(claimed)

    async def _refresh(self, provider: type[Provider], urls: list[str]) -> FetchOutcome:
        outcome = await self._executor.run(provider, urls)
        now = time.time()
        await self._store.merge_counts(provider.name, outcome.observations, now)
        if outcome.problem is not None:
            await self._heed(provider, outcome.problem, now)
        if outcome.errors:
            await self._store.mark_failed(provider.name, outcome.errors, now)
            first = next(iter(outcome.errors.values()))
            log.warning(
                "%s: %d URL(s) got no data: %s", provider.name, len(outcome.errors), first.message
            )
            if not outcome.counts:
                await self._store.record_failure(provider.name, now, first.message)
        if outcome.counts:
            await self._store.record_success(provider.name, now)
        return outcome

    async def _heed(self, provider: type[Provider], problem: Problem, now: float) -> None:
        """Stop calling a network that throttles us or refused our credentials."""
        if problem.kind == "throttled":
            wait = (
                problem.retry_after
                if problem.retry_after is not None
                else provider.throttle_seconds
            )
            await self._store.throttle(provider.name, now + wait)
            log.warning("%s: throttled for %.0f s: %s", provider.name, wait, problem.message)
        else:
            await self._store.reject(
                provider.name, fingerprint(provider, self._settings), problem.message
            )
            log.error(
                "%s: %s; not called until its credentials change", provider.name, problem.message
            )


def start_scheduler(poller: Poller, tick_seconds: float) -> AsyncIOScheduler:
    """Run the poller's tick now and then periodically on the running loop, never two at once."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        poller.tick,
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
