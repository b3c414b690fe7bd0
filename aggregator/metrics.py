"""The Prometheus metrics of the shared state: provider requests, health, budgets and the queue.

Everything here comes from a snapshot read from Redis beforehand, so every process that serves
/metrics reports the same numbers, whichever worker made the requests; collecting does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal, get_args

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from aggregator.health import State
from aggregator.store import LATENCY_BOUNDS, Tally

BreakerState = Literal["closed", "open", "half-open"]
OUTCOMES = ("ok", "failed", "neutral")
# The histogram's `le` labels: the stored buckets' upper bounds, then the overflow bucket.
BUCKETS = (*map(str, LATENCY_BOUNDS), "+Inf")


@dataclass(frozen=True)
class ProviderSample:
    """What one provider's metrics show, as read from Redis at scrape time."""

    name: str
    state: State
    suspect: bool
    breaker: BreakerState
    budget_limit: int
    budget_left: float
    lifetime: Tally


@dataclass(frozen=True)
class Snapshot:
    """The shared state at one moment: per provider, and the due queue."""

    providers: list[ProviderSample]
    urls_tracked: int
    urls_due: int
    # How long the longest-waiting due URL has been due; 0 when none is.
    refresh_lag: float


def _one_of(
    name: str, doc: str, states: tuple[str, ...], current: dict[str, str]
) -> GaugeMetricFamily:
    """A gauge per provider and state, 1 for the provider's current state and 0 for the rest,
    so that a query can select on the state without knowing which series exist."""
    family = GaugeMetricFamily(name, doc, labels=["provider", "state"])
    for provider, held in current.items():
        for state in states:
            family.add_metric([provider, state], 1.0 if state == held else 0.0)
    return family


class SnapshotCollector:
    """A prometheus-client collector over one snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        requests = CounterMetricFamily(
            "flares_provider_requests",
            "Requests to the network by every worker since the stats began, by outcome "
            "(neutral: throttled or credentials refused)",
            labels=["provider", "outcome"],
        )
        duration = HistogramMetricFamily(
            "flares_provider_request_duration_seconds",
            "Time a request to the network took, by every worker",
            labels=["provider"],
        )
        left = GaugeMetricFamily(
            "flares_provider_budget_left",
            "Requests the provider may still make in the current budget window",
            labels=["provider"],
        )
        limit = GaugeMetricFamily(
            "flares_provider_budget_limit",
            "Requests the provider may make per budget window",
            labels=["provider"],
        )
        suspect = GaugeMetricFamily(
            "flares_provider_suspect",
            "1 when the last hour's answers look like the network shutting down (0 for pages "
            "that had counts, 404 for every request), though the requests succeed",
            labels=["provider"],
        )
        for p in snap.providers:
            tally = p.lifetime
            for outcome, count in zip(
                OUTCOMES, (tally.ok, tally.failed, tally.neutral), strict=True
            ):
                requests.add_metric([p.name, outcome], count)
            # Stored per bucket; Prometheus wants each bucket to count everything below its bound.
            cumulative = list(accumulate(tally.latencies))
            duration.add_metric(
                [p.name],
                buckets=list(zip(BUCKETS, cumulative, strict=True)),
                sum_value=tally.latency_sum,
            )
            left.add_metric([p.name], p.budget_left)
            limit.add_metric([p.name], p.budget_limit)
            suspect.add_metric([p.name], 1.0 if p.suspect else 0.0)
        yield from (requests, duration, left, limit, suspect)
        yield _one_of(
            "flares_provider_breaker_state",
            "1 for the circuit breaker's current state (closed, open, half-open)",
            get_args(BreakerState),
            {p.name: p.breaker for p in snap.providers},
        )
        yield _one_of(
            "flares_provider_state",
            "1 for the provider's health state, as GET /api/v1/providers reports it",
            get_args(State),
            {p.name: p.state for p in snap.providers},
        )
        yield GaugeMetricFamily("flares_urls_tracked", "Pages tracked", value=snap.urls_tracked)
        yield GaugeMetricFamily(
            "flares_urls_due", "Tracked pages due for a refresh now", value=snap.urls_due
        )
        yield GaugeMetricFamily(
            "flares_refresh_lag_seconds",
            "How long the longest-waiting due page has been due; 0 when none is",
            value=snap.refresh_lag,
        )
