"""The plugin contract: what a network provider declares and the pure functions it implements."""

from __future__ import annotations

import abc
import enum
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

MAX_COUNT = 10**12
"""No page has been shared a trillion times: a larger number is a broken answer, not a count."""


class NetworkStatus(enum.StrEnum):
    """What the network itself offers, as researched; independent of how our calls go."""

    LIVE = "live"
    UNDOCUMENTED = "undocumented"
    PAID = "paid"
    RETIRED = "retired"


class ParseError(ValueError):
    """The network answered with a body the provider cannot read as counts."""


@dataclass(frozen=True)
class Observation:
    """What a network said about one URL: the number that counts, and the parts it reported."""

    count: int
    # Components next to the count, e.g. Facebook's reactions/shares/comments, Reddit's comments.
    parts: Mapping[str, int] = field(default_factory=dict)
    # For networks that only report a recent window (X: 7 days): count per day, "YYYY-MM-DD".
    # The lifetime count is then the sum of every day ever seen, each day counted once.
    days: Mapping[str, int] = field(default_factory=dict)


Counts = Mapping[str, "int | Observation"]


@dataclass(frozen=True)
class Problem:
    """An answer that says to stop calling: throttled until a time, or credentials rejected."""

    kind: Literal["throttled", "rejected"]
    message: str
    # For "throttled": seconds to wait, when the network says; the executor picks a default.
    retry_after: float | None = None


@dataclass(frozen=True)
class Token:
    """A bearer token from a provider's auth step and how long it is valid."""

    value: str
    expires_in: float


@dataclass(frozen=True)
class ProviderRequest:
    """One HTTP request a provider wants made; the executor sends it."""

    url: str
    params: Sequence[tuple[str, str]] = ()
    method: Literal["GET", "POST"] = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    json: Any = None
    basic_auth: tuple[str, str] | None = None


def rebase(endpoint: str, base_url: str | None) -> str:
    """Replace the scheme and host of `endpoint` by those of `base_url`, keeping the path."""
    if not base_url:
        return endpoint
    base = urlsplit(base_url)
    path = urlsplit(endpoint).path
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, "", ""))


def json_body(provider: str, body: bytes) -> Any:
    """The decoded JSON of a body; ParseError naming the provider when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"{provider}: body is not JSON: {exc}") from exc


def one_url(provider: str, urls: Sequence[str], error: type[ValueError] = ValueError) -> str:
    """The only URL of a batch; `error` (ValueError, or ParseError in a parser) otherwise."""
    if len(urls) != 1:
        raise error(f"{provider} takes exactly one URL per request, got {len(urls)}")
    return urls[0]


def count_value(
    provider: str,
    value: object,
    what: str,
    *,
    strings: bool = False,
    floats: bool = False,
    negative_is_zero: bool = False,
) -> int:
    """A count from 0 to MAX_COUNT; ParseError for anything else (a bool is not a count).

    `strings` admits decimal digit strings ("12"), `floats` rounds whole-ish floats (12.0),
    `negative_is_zero` reads a score that sank below zero as no shares rather than an error.
    """
    number: object = value
    if strings and isinstance(value, str) and value.isascii() and value.strip().isdigit():
        digits = value.strip()
        # Past int()'s digit limit a long string raises ValueError; anything this long is absurd.
        if len(digits) > len(str(MAX_COUNT)):
            raise ParseError(f"{provider}: {what} {digits[:20]}... is outside 0..{MAX_COUNT}")
        number = int(digits)
    if floats and isinstance(value, float) and math.isfinite(value):
        number = round(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise ParseError(f"{provider}: {what} {value!r} is not an integer count")
    if negative_is_zero and -MAX_COUNT <= number < 0:
        number = 0
    if not 0 <= number <= MAX_COUNT:
        raise ParseError(f"{provider}: {what} {number} is outside 0..{MAX_COUNT}")
    return number


def unwrap_call(provider: str, body: bytes, function: str) -> str:
    """The argument text of a JSONP/JS call `function(...)`, found without evaluating anything."""
    text = body.decode("utf-8", errors="replace").strip()
    start = text.find(function + "(")
    end = text.rfind(")")
    if start < 0 or end < start:
        raise ParseError(f"{provider}: body is not a {function}(...) call: {text[:80]!r}")
    return text[start + len(function) + 1 : end]


class Provider(abc.ABC):
    """A network: declared data plus a request builder and a pure parser; no I/O of its own."""

    name: ClassVar[str]
    label: ClassVar[str]
    # Brand colour of the network's button and badge, as '#rrggbb'.
    color: ClassVar[str] = "#555555"
    # The network's share page, with {url} and {title} placeholders; None where it has none.
    share_url: ClassVar[str | None] = None
    status: ClassVar[NetworkStatus]
    status_since: ClassVar[date | None] = None
    docs_url: ClassVar[str | None] = None
    endpoint: ClassVar[str]
    batch_size: ClassVar[int] = 1
    # Names of the provider settings that must be set (e.g. "app_id", "bearer_token").
    credentials: ClassVar[tuple[str, ...]] = ()
    enabled_by_default: ClassVar[bool] = True
    # How long to stop calling when the network throttles without saying for how long.
    throttle_seconds: ClassVar[float] = 60.0
    # Requests per window (seconds) and requests at once, from the network's documented limits;
    # the defaults are polite guesses for networks that document none.
    budget: ClassVar[tuple[int, float]] = (60, 60.0)
    concurrency: ClassVar[int] = 2
    # Whether the budget is spent per URL rather than per request (Facebook counts every URL).
    cost_per_url: ClassVar[bool] = False
    # URL variants the network already counts as one page ("scheme", "www", "slash").
    merges_variants: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def share_link(cls, url: str, title: str = "") -> str | None:
        """The network's share page for a page URL, or None where the network has none."""
        if cls.share_url is None:
            return None
        return cls.share_url.format(url=quote(url, safe=""), title=quote(title, safe=""))

    @classmethod
    def required_settings(cls, config: Mapping[str, str]) -> tuple[str, ...]:
        """The settings this configuration still needs; a mode may need other credentials."""
        return cls.credentials

    @classmethod
    def token_request(
        cls, base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest | None:
        """The request that obtains a bearer token, for networks with an auth step; else None."""
        return None

    @classmethod
    def bearer_header(cls, config: Mapping[str, str], scheme: str = "Bearer") -> dict[str, str]:
        """The Authorization header with the auth step's token; ValueError without one."""
        token = config.get("token")
        if not token:
            raise ValueError(f"{cls.name} needs {' and '.join(cls.credentials)} for a token")
        return {"Authorization": f"{scheme} {token}"}

    @classmethod
    def parse_token(cls, body: bytes) -> Token:
        """Read the auth step's answer; only called when token_request gives a request."""
        raise ParseError(f"{cls.name}: has no auth step")

    @classmethod
    @abc.abstractmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """Build the request for one batch of at most `batch_size` page URLs.

        `config` holds the provider's settings that are set, and `token` after an auth step.
        """

    @classmethod
    @abc.abstractmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> Counts:
        """Read the counts of a 2xx body; raise ParseError on anything else; no I/O."""

    @classmethod
    def problem(cls, status: int, headers: Mapping[str, str], body: bytes) -> Problem | None:
        """Whether an answer (of any status) says to stop calling; headers are lower-case keys."""
        if status == 429:
            return Problem("throttled", "HTTP 429 Too Many Requests", rate_limit_wait(headers))
        if 200 <= status < 300 and quota_spent(headers):
            return Problem("throttled", "the rate limit is spent", rate_limit_wait(headers))
        return None


# A reset further away than a day is a broken header, not a plan.
MAX_WAIT = 86_400.0
_REMAINING = ("x-rate-limit-remaining", "x-ratelimit-remaining")
# X's x-rate-limit-reset is a Unix time; Reddit's x-ratelimit-reset counts seconds from now.
_RESET_AT, _RESET_IN = "x-rate-limit-reset", "x-ratelimit-reset"


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers.get(name, "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header given in seconds (at most MAX_WAIT); None when absent
    or a date."""
    wait = _number(headers, "retry-after")
    return None if wait is None else min(wait, MAX_WAIT)


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """How long the answer says to wait: Retry-After, else the rate-limit reset headers."""
    wait = retry_after_seconds(headers)
    if wait is not None:
        return wait
    reset_at, reset_in = _number(headers, _RESET_AT), _number(headers, _RESET_IN)
    seconds = reset_at - time.time() if reset_at is not None else reset_in
    return None if seconds is None else min(max(seconds, 0.0), MAX_WAIT)


def quota_spent(headers: Mapping[str, str]) -> bool:
    """Whether the rate-limit headers say no request is left in the window."""
    return any((left := _number(headers, name)) is not None and left < 1 for name in _REMAINING)
