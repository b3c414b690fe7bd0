"""The status page: every provider's health and the freshness of the served counts, as HTML."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

from aggregator.api.models import ProviderOut, QueueOut
from aggregator.health import State
from aggregator.templates import package_templates

# Long enough to read a row, short enough that a failing network shows within half a minute.
REFRESH_SECONDS: Final = 30
NONE: Final = "\N{EM DASH}"


@dataclass(frozen=True)
class Look:
    """How a state's badge is drawn (text contrast at least 4.5:1), and what the legend says."""

    background: str
    text: str
    meaning: str


LOOKS: Final[Mapping[State, Look]] = MappingProxyType(
    {
        "ok": Look("#2e7d32", "#ffffff", "requests succeed"),
        "degraded": Look(
            "#f2c200", "#1a1a1a", "works, but many of the last hour's requests failed"
        ),
        "throttled": Look("#ef6c00", "#1a1a1a", "the network asked to wait (HTTP 429)"),
        "failing": Look("#d32f2f", "#ffffff", "the last requests all failed"),
        "circuit-open": Look("#7b1010", "#ffffff", "too many failures in a row; calls paused"),
        "rejected": Look("#6a1b9a", "#ffffff", "the network refused the credentials"),
        "pending": Look("#546e7a", "#ffffff", "no answer from the network yet"),
        "unconfigured": Look("#757575", "#ffffff", "needs credentials in the settings"),
        "clicks": Look("#00695c", "#ffffff", "counted from flares' own share links; not called"),
        "disabled": Look("#9e9e9e", "#1a1a1a", "turned off in the settings"),
        "retired": Look("#424242", "#ffffff", "the network shut its counts down; ours are kept"),
    }
)


@dataclass(frozen=True)
class Overview:
    """What the page says above the table: the store, the scheduler, the queue, freshness."""

    redis: str
    scheduler: str
    tracked: int
    # Tracked URLs that are not overdue by more than `grace` seconds.
    fresh: int
    grace: float
    queue: QueueOut | None


_UNITS: Final = ((365.25 * 86_400, "y"), (86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def span(seconds: float) -> str:
    """A duration in its largest whole unit: "42 s", "3 min", "2 h", "5 d", "7 y"."""
    seconds = max(seconds, 0.0)
    size, unit = next((u for u in _UNITS if seconds >= u[0]), _UNITS[-1])
    return f"{seconds // size:.0f} {unit}"


def ago(moment: datetime, now: datetime) -> str:
    return f"{span((now - moment).total_seconds())} ago"


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def ms(seconds: float | None) -> str:
    return NONE if seconds is None else f"{seconds * 1000:,.0f} ms"


def percent(ratio: float | None) -> str:
    """Rounded down, so that 99.96 % of requests never reads as all of them."""
    if ratio is None:
        return NONE
    # The epsilon keeps a ratio such as 0.29, stored as 0.28999..., from reading 28.9 %.
    return f"{math.floor(ratio * 1000 + 1e-9) / 10:g}%"


def number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


_ENV: Final = package_templates(__name__)
_ENV.filters.update(span=span, ago=ago, utc=utc, ms=ms, percent=percent, number=number)
_PAGE: Final = _ENV.get_template("status.html")


def render_status(overview: Overview, providers: Sequence[ProviderOut], now: datetime) -> str:
    """The page: the overview, one row per provider, and the legend of the state colours."""
    return _PAGE.render(
        overview=overview, providers=providers, now=now, looks=LOOKS, refresh=REFRESH_SECONDS
    )


def render_unavailable(redis: str, now: datetime) -> str:
    """The page while Redis, which holds every count and all health, does not answer."""
    return _PAGE.render(
        redis=redis, overview=None, providers=(), now=now, looks=LOOKS, refresh=REFRESH_SECONDS
    )
