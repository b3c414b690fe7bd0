"""Provider health: the rules that turn settings and stored bookkeeping into a state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aggregator.config import Settings
from aggregator.store import ProviderRecord
from providers.base import Provider

State = Literal["ok", "failing", "pending", "unconfigured", "disabled"]


def is_enabled(provider: type[Provider], settings: Settings) -> bool:
    flag = settings.provider(provider.name).enabled
    return provider.enabled_by_default if flag is None else flag


def missing_credentials(provider: type[Provider], settings: Settings) -> list[str]:
    have = settings.provider(provider.name).credential_values()
    return [name for name in provider.credentials if name not in have]


def is_active(provider: type[Provider], settings: Settings) -> bool:
    """Whether the scheduler should call this provider at all."""
    return is_enabled(provider, settings) and not missing_credentials(provider, settings)


@dataclass(frozen=True)
class Assessment:
    """A provider's state and the reason for it."""

    state: State
    reason: str


def assess(provider: type[Provider], settings: Settings, record: ProviderRecord) -> Assessment:
    """Apply the health rules, in order of precedence."""
    if not is_enabled(provider, settings):
        return Assessment("disabled", "turned off in the settings")
    missing = missing_credentials(provider, settings)
    if missing:
        names = ", ".join(
            f"FLARES_PROVIDERS__{provider.name.upper()}__{m.upper()}" for m in missing
        )
        return Assessment("unconfigured", f"needs {names}")
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
