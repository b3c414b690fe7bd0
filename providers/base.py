"""The plugin contract: what a network provider declares and the pure functions it implements."""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit


class NetworkStatus(enum.StrEnum):
    """What the network itself offers, as researched; independent of how our calls go."""

    LIVE = "live"
    UNDOCUMENTED = "undocumented"
    PAID = "paid"
    RETIRED = "retired"


class ParseError(ValueError):
    """The network answered 2xx with a body the provider cannot read as counts."""


def json_body(provider: str, body: bytes) -> Any:
    """The decoded JSON of a body; ParseError naming the provider when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"{provider}: body is not JSON: {exc}") from exc


def count_value(provider: str, value: object, what: str) -> int:
    """A count clamped at 0; ParseError for anything but an integer (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{provider}: {what} {value!r} is not an integer")
    return max(value, 0)


@dataclass(frozen=True)
class ProviderRequest:
    """One HTTP request a provider wants made; the executor sends it."""

    url: str
    params: Sequence[tuple[str, str]] = ()
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)


def rebase(endpoint: str, base_url: str | None) -> str:
    """Replace the scheme and host of `endpoint` by those of `base_url`, keeping the path."""
    if not base_url:
        return endpoint
    base = urlsplit(base_url)
    path = urlsplit(endpoint).path
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, "", ""))


class Provider(abc.ABC):
    """A network: declared data plus a request builder and a pure parser; no I/O of its own."""

    name: ClassVar[str]
    label: ClassVar[str]
    status: ClassVar[NetworkStatus]
    status_since: ClassVar[date | None] = None
    endpoint: ClassVar[str]
    batch_size: ClassVar[int] = 1
    # Names of the provider settings that must be set (e.g. "app_id", "bearer_token").
    credentials: ClassVar[tuple[str, ...]] = ()
    enabled_by_default: ClassVar[bool] = True
    # URL variants the network already counts as one page ("scheme", "www", "slash").
    merges_variants: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abc.abstractmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        """Build the request for one batch of at most `batch_size` page URLs."""

    @classmethod
    @abc.abstractmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        """Read the counts of a 2xx body; raise ParseError on anything else; no I/O."""
