"""The query parameters every badge route shares, and the badge they make of a count or error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, Query

from aggregator.badges import STYLES, full, metric, parse_color

TOTAL = "total"
TOTAL_LABEL = "flares"
OK_COLOR, GREY, RED, LABEL_COLOR = "#007ec6", "#939393", "#dd4343", "#555"
OK_MAX_AGE, PENDING_MAX_AGE, ERROR_MAX_AGE = 300, 30, 60
# A longer max-age is no use to a cache and only pins a stale count.
MAX_CACHE_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class Badge:
    """Everything a badge shows, after the query's overrides."""

    label: str
    message: str
    color: str
    label_color: str = LABEL_COLOR
    max_age: int = OK_MAX_AGE
    is_error: bool = False


class BadgeError(Exception):
    """What kept a badge from showing a count: red when the request is at fault, else grey."""

    def __init__(self, message: str, color: str = RED, max_age: int = ERROR_MAX_AGE) -> None:
        super().__init__(message)
        self.message, self.color, self.max_age = message, color, max_age

    def badge(self, label: str, look: Look | None = None) -> Badge:
        """The error badge; only a label override applies, so errors always look like errors."""
        if look is not None and look.label is not None:
            label = look.label
        return Badge(label, self.message, self.color, max_age=self.max_age, is_error=True)


def pending() -> BadgeError:
    """Tracked, but no network has answered yet."""
    return BadgeError("pending", GREY, PENDING_MAX_AGE)


@dataclass(frozen=True)
class Numbers:
    """How counts are shown and cached: the parameters the badge, bar and JSON share."""

    minimum: int | None
    cache_seconds: int | None
    number_format: Literal["metric", "full"]

    def text(self, count: int) -> str:
        return full(count) if self.number_format == "full" else metric(count)

    def hides(self, count: int) -> bool:
        """Humble mode: below `min` the count is not shown at all."""
        return self.minimum is not None and count < self.minimum

    def max_age(self, default: int) -> int:
        """`cacheSeconds` lengthens the default cache time, never shortens it."""
        return max(default, min(self.cache_seconds or 0, MAX_CACHE_SECONDS))


@dataclass(frozen=True)
class Look:
    """How a badge looks: label, colours and style overrides."""

    label: str | None
    color: str | None
    label_color: str | None
    style: str | None

    def badge(self, label: str, count: int, numbers: Numbers) -> Badge:
        """A count badge; in humble mode the label alone, as one box in the label colour."""
        shown = label if self.label is None else self.label
        # Unparseable colours fall back to the defaults rather than failing the badge.
        label_color = parse_color(self.label_color) or LABEL_COLOR
        max_age = numbers.max_age(OK_MAX_AGE)
        if numbers.hides(count):
            # With the label removed too there would be nothing left: keep the default one.
            return Badge("", shown or label, label_color, label_color, max_age)
        color = parse_color(self.color) or OK_COLOR
        return Badge(shown, numbers.text(count), color, label_color, max_age)


async def numbers_query(
    minimum: Annotated[
        int | None,
        Query(
            alias="min",
            description="Humble mode: below this count the badge shows its label and no number",
        ),
    ] = None,
    cache_seconds: Annotated[
        int | None,
        Query(
            alias="cacheSeconds",
            description=(
                f"Cache time in seconds; values below the default ({OK_MAX_AGE}) are ignored, "
                "and error badges keep their short cache time"
            ),
        ),
    ] = None,
    number_format: Annotated[
        Literal["metric", "full"],
        Query(alias="format", description="`metric` (1.1k, as shields.io) or `full` (1100)"),
    ] = "metric",
) -> Numbers:
    return Numbers(minimum, cache_seconds, number_format)


async def look_query(
    label: Annotated[
        str | None,
        Query(description="Left-hand text; empty removes the left part", max_length=100),
    ] = None,
    color: Annotated[
        str | None,
        Query(
            description="Right-hand colour: a shields.io name (blue, brightgreen, ...) or hex; "
            "unknown values fall back to the default",
            max_length=64,
        ),
    ] = None,
    label_color: Annotated[
        str | None,
        Query(alias="labelColor", description="Left-hand colour, like `color`", max_length=64),
    ] = None,
    style: Annotated[
        str | None,
        Query(
            description=f"One of {', '.join(STYLES)}; unknown styles fall back to flat",
            max_length=64,
        ),
    ] = None,
) -> Look:
    return Look(label, color, label_color, style)


NumbersDep = Annotated[Numbers, Depends(numbers_query)]
LookDep = Annotated[Look, Depends(look_query)]
UrlParam = Annotated[str | None, Query(description="Page URL", max_length=4096)]
EtagHeader = Annotated[str | None, Header()]
NetworkParam = Annotated[str, Query(description="`total` or a provider name", max_length=64)]
