"""Provider health: the rules that turn settings and stored bookkeeping into a state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from aggregator.config import Settings
from aggregator.store import ProviderRecord
from providers.base import Provider

State = Literal[
    "ok",
    "failing",
    "pending",
    "throttled",
    "circuit-open",
    "rejected",
    "unconfigured",
    "disabled",
]


def is_enabled(provider: type[Provider], settings: Settings) -> bool:
    flag = settings.provider(provider.name).enabled
    return provider.enabled_by_default if flag is None else flag


def missing_settings(provider: type[Provider], settings: Settings) -> list[str]:
    have = settings.provider(provider.name).values()
    return [name for name in provider.required_settings(have) if name not in have]


def is_active(provider: type[Provider], settings: Settings) -> bool:
    """Whether the scheduler should call this provider at all."""
    return is_enabled(provider, settings) and not missing_settings(provider, settings)


def fingerprint(provider: type[Provider], settings: Settings) -> str:
    """A short digest of the provider's credentials: a rejection holds until they change."""
    secrets = "\x00".join(settings.provider(provider.name).secrets())
    return hashlib.sha256(f"{provider.name}\x00{secrets}".encode()).hexdigest()[:16]


def is_rejected(provider: type[Provider], settings: Settings, record: ProviderRecord) -> bool:
    return record.rejected is not None and record.rejected == fingerprint(provider, settings)


@dataclass(frozen=True)
class Assessment:
    """A provider's state and the reason for it."""

    state: State
    reason: str


def assess(
    provider: type[Provider], settings: Settings, record: ProviderRecord, now: float
) -> Assessment:
    """Apply the health rules, in order of precedence."""
    if not is_enabled(provider, settings):
        return Assessment("disabled", "turned off in the settings")
    missing = missing_settings(provider, settings)
    if missing:
        names = ", ".join(
            f"FLARES_PROVIDERS__{provider.name.upper()}__{m.upper()}" for m in missing
        )
        return Assessment("unconfigured", f"needs {names}")
    if is_rejected(provider, settings, record):
        reason = record.rejected_reason or "the network refused the credentials"
        return Assessment("rejected", f"{reason}; no calls until the credentials change")
    if record.throttled_until is not None and record.throttled_until > now:
        wait = record.throttled_until - now
        return Assessment("throttled", f"the network asked to wait; no calls for {wait:.0f} s")
    if record.breaker(now) != "closed":
        return Assessment(
            "circuit-open",
            f"{record.consecutive_failures} failed requests in a row; calls paused for a cool-down",
        )
    if record.consecutive_failures >= settings.health.failing_after:
        return Assessment("failing", f"the last {record.consecutive_failures} requests failed")
    if record.last_success_at is None:
        if record.last_failure_at is None:
            return Assessment("pending", "no request made yet")
        # Never worked, but too few failures to call it failing: "ok" would be a claim we lack.
        return Assessment("pending", f"no success yet; {record.consecutive_failures} failed")
    if record.consecutive_failures:
        return Assessment("ok", f"{record.consecutive_failures} recent failure(s), not yet failing")
    return Assessment("ok", "the last request succeeded")
