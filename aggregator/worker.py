"""`flares worker`: the scheduler without the API, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aggregator.config import Settings
from aggregator.heap import tuned_gc
from aggregator.runtime import open_runtime
from aggregator.schedule import start_scheduler

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, redis_url: str) -> None:
    """Poll until asked to stop, then finish the batch in hand."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_runtime(settings, redis_url) as runtime:
        # As for `flares serve`: full collections rescanning the heap built at start paused
        # every batch in flight (bench/refresh.py).
        with tuned_gc():
            ticker = start_scheduler(runtime.poller, settings.schedule.tick_seconds)
            names = ", ".join(runtime.poller.provider_names) or "no provider"
            log.info("worker polling %s", names)
            await stop.wait()
            log.info("stopping: finishing the batch in hand")
            await runtime.poller.stop()
            ticker.shutdown(wait=False)
