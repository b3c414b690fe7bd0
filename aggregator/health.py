"""Provider health: the rules that turn settings and stored bookkeeping into a state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Literal

from aggregator.config import Settings, Source
from aggregator.store import LATENCY_BOUNDS, ProviderRecord, Tally
from providers.base import NetworkStatus, Provider

State = Literal[
    "ok",
    "degraded",
    "failing",
    "pending",
    "throttled",
    "circuit-open",
    "rejected",
    "unconfigured",
    "clicks",
    "disabled",
    "retired",
]


def is_enabled(provider: type[Provider], settings: Settings) -> bool:
    flag = settings.provider(provider.name).enabled
    return provider.enabled_by_default if flag is None else flag


def missing_settings(provider: type[Provider], settings: Settings) -> list[str]:
    have = settings.provider(provider.name).values()
    return [name for name in provider.required_settings(have) if name not in have]


def is_active(provider: type[Provider], settings: Settings) -> bool:
    """Whether the provider is on and configured: its network is shown on every page, and
    the scheduler calls it unless its number comes from clicks alone."""
    return is_enabled(provider, settings) and not missing_settings(provider, settings)


def fingerprint(provider: type[Provider], settings: Settings) -> str:
    """A short digest of the provider's credentials: a rejection holds until they change."""
    secrets = "\x00".join(settings.provider(provider.name).secrets())
    return hashlib.sha256(f"{provider.name}\x00{secrets}".encode()).hexdigest()[:16]


def is_rejected(provider: type[Provider], settings: Settings, record: ProviderRecord) -> bool:
    return record.rejected is not None and record.rejected == fingerprint(provider, settings)


@dataclass(frozen=True)
class Assessment:
    """A provider's state, the reason for it, and since when it holds (None: not known)."""

    state: State
    reason: str
    since: float | None = None


def assess(
    provider: type[Provider],
    settings: Settings,
    record: ProviderRecord,
    hour: Tally,
    now: float,
    source: Source = "api",
) -> Assessment:
    """Apply the health rules, in order of precedence; `source` is where the network's served
    number comes from (aggregator/sources.py)."""
    if provider.status is NetworkStatus.RETIRED:
        since = provider.status_since
        when = f" on {since.isoformat()}" if since else ""
        at = datetime.combine(since, time(), UTC).timestamp() if since else None
        return Assessment("retired", f"the network retired its counts{when}; counts are kept", at)
    if not is_enabled(provider, settings):
        return Assessment("disabled", "turned off in the settings")
    missing = missing_settings(provider, settings)
    if missing:
        names = ", ".join(
            f"FLARES_PROVIDERS__{provider.name.upper()}__{m.upper()}" for m in missing
        )
        return Assessment("unconfigured", f"needs {names}")
    if source == "clicks":
        return Assessment(
            "clicks", "its number is the share clicks flares counts (source clicks); not called"
        )
    if is_rejected(provider, settings, record):
        reason = record.rejected_reason or "the network refused the credentials"
        return Assessment(
            "rejected",
            f"{reason}; no calls until the credentials change",
            record.last_failure_at,
        )
    if record.throttled_until is not None and record.throttled_until > now:
        wait = record.throttled_until - now
        return Assessment(
            "throttled",
            f"the network asked to wait; no calls for {wait:.0f} s",
            record.throttled_since,
        )
    if record.breaker(now) != "closed":
        return Assessment(
            "circuit-open",
            f"{record.consecutive_failures} failed requests in a row; calls paused for a cool-down",
            record.breaker_since,
        )
    if record.consecutive_failures >= settings.health.failing_after:
        return Assessment(
            "failing",
            f"the last {record.consecutive_failures} requests failed",
            record.failing_since,
        )
    if record.last_success_at is None:
        if record.last_failure_at is None:
            return Assessment("pending", "no request made yet")
        # Never worked, but too few failures to call it failing: "ok" would be a claim we lack.
        return Assessment("pending", f"no success yet; {record.consecutive_failures} failed")
    answered = hour.ok + hour.failed
    share = hour.failed / answered if answered else 0.0
    if answered >= settings.health.min_requests and share > settings.health.degraded_share:
        return Assessment(
            "degraded",
            f"{hour.failed} of {answered} requests in the last hour failed ({share:.0%})",
            hour.first_failure_at,
        )
    if record.consecutive_failures:
        reason = f"{record.consecutive_failures} recent failure(s), not yet failing"
    else:
        reason = "the last request succeeded"
    return Assessment("ok", reason, record.ok_since)


def suspicion(hour: Tally, settings: Settings) -> str | None:
    """Why the answers look like a network shutting down, though the requests succeed."""
    least = settings.health.min_requests
    answered = hour.ok + hour.failed
    if answered >= least and hour.not_found == answered:
        return f"every request in the last hour ({answered}) got HTTP 404"
    if hour.had >= least and hour.zeroed >= hour.had * settings.health.suspect_zero_share:
        return f"answered 0 for {hour.zeroed} of {hour.had} URLs that had counts in the last hour"
    return None


def latency_quantile(hour: Tally, q: float) -> float | None:
    """The q-quantile of request latency, interpolated in its histogram bucket as Prometheus
    does; None without requests, the last bound when it falls in the overflow bucket."""
    total = sum(hour.latencies)
    if not total:
        return None
    rank = q * total
    seen, lower = 0, 0.0
    for upper, count in zip(LATENCY_BOUNDS, hour.latencies, strict=False):
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen, lower = seen + count, upper
    return LATENCY_BOUNDS[-1]
