"""Where each network's served number comes from, and the counts and total a page shows.

A network's source is `api` (what the network reports), `clicks` (share clicks counted by
flares' own /share links) or `max` (the larger of the two). Every view of a page's numbers (the
counts JSON, badges, the bar, the widget) reads them through `Served`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from aggregator.config import Settings, Source
from aggregator.health import missing_settings
from aggregator.store import NetworkRecord, UrlRecord
from providers.base import NetworkStatus, Provider

# Shares by e-mail: no network and no API, only the clicks on flares' mailto: link.
EMAIL = "email"
# LinkedIn removed its counter (2018) and Buffer's legacy v1 API takes no new apps: by default
# their number is what flares counts itself.
CLICKS_BY_DEFAULT = frozenset({"linkedin", "buffer"})


def default_source(provider: type[Provider], settings: Settings) -> Source:
    """Clicks where the API gives no count: the networks above, and a paid one (X) without
    the credentials to pay for it; otherwise the API."""
    if provider.name in CLICKS_BY_DEFAULT:
        return "clicks"
    if provider.status is NetworkStatus.PAID and missing_settings(provider, settings):
        return "clicks"
    return "api"


def source_of(name: str, provider: type[Provider] | None, settings: Settings) -> Source:
    """The network's source: its setting, else the default; e-mail only has clicks."""
    if name == EMAIL and provider is None:
        return "clicks"
    # A network whose plugin is gone keeps the counts its API gave.
    if provider is None:
        return "api"
    return settings.provider(name).source or default_source(provider, settings)


def served_count(net: NetworkRecord | None, source: Source) -> int | None:
    """The number shown for one network; None until its source has one. An imported baseline
    is the floor whatever the source: it is how a retired network's old numbers keep showing."""
    if net is None:
        return None
    if source == "clicks":
        value: int | None = net.clicks
    elif source == "max":
        value = net.clicks if net.count is None else max(net.count, net.clicks)
    else:
        value = net.count
    if net.baseline:
        return net.baseline if value is None else max(value, net.baseline)
    return value


def sources(settings: Settings, providers: Mapping[str, type[Provider]]) -> dict[str, Source]:
    """Every known network's source; fixed for a process, so worked out once at start."""
    found = {name: source_of(name, cls, settings) for name, cls in providers.items()}
    return {EMAIL: source_of(EMAIL, None, settings), **found}


@dataclass(frozen=True)
class Served:
    """A page's numbers as shown: each network's count from its source, and their sum."""

    record: UrlRecord
    # From `sources()`; a network missing there (its plugin is gone) keeps its API counts.
    sources: Mapping[str, Source]

    def source(self, name: str) -> Source:
        return self.sources.get(name, "api")

    def count(self, name: str) -> int | None:
        return served_count(self.record.networks.get(name), self.source(name))

    @cached_property
    def counts(self) -> dict[str, int]:
        """The networks of the record that have a served count."""
        found = {name: self.count(name) for name in self.record.networks}
        return {name: count for name, count in found.items() if count is not None}

    @property
    def counted(self) -> bool:
        """Whether any network has a number yet (else the page is pending)."""
        return bool(self.counts)

    @property
    def total(self) -> int:
        """The flares: the sum of the served counts."""
        return sum(self.counts.values())
