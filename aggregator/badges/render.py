"""The style registry: raw text and colours in, the named style's SVG (or width) out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Protocol

from aggregator.badges.colors import DEFAULT_COLOR, DEFAULT_LABEL_COLOR, parse_color
from aggregator.badges.flat import FLAT, FLAT_SQUARE, PLASTIC
from aggregator.badges.for_the_badge import FOR_THE_BADGE
from aggregator.badges.social import SOCIAL
from aggregator.badges.text import prepare


class Drawer(Protocol):
    """What each style module provides, working on cleaned text and parsed colours."""

    def width(self, label: str, message: str) -> float:
        """Total badge width in pixels."""
        ...

    def render(
        self, label: str, message: str, *, fill: str, label_fill: str, link: str | None
    ) -> str:
        """The badge as SVG text."""
        ...


@dataclass(frozen=True)
class Style:
    """A registered style: call it to render, or ask its width, from raw input."""

    drawer: Drawer

    def __call__(
        self,
        label: str,
        message: str,
        *,
        color: str,
        label_color: str = DEFAULT_LABEL_COLOR,
        link: str | None = None,
    ) -> str:
        """Render one badge; unparseable colours fall back to the defaults."""
        return self.drawer.render(
            prepare(label),
            prepare(message),
            fill=parse_color(color) or DEFAULT_COLOR,
            label_fill=parse_color(label_color) or DEFAULT_LABEL_COLOR,
            link=link,
        )

    def width(self, label: str, message: str) -> float:
        """Width of the badge `__call__` would draw, without drawing it."""
        return self.drawer.width(prepare(label), prepare(message))


STYLES: Final[Mapping[str, Style]] = MappingProxyType(
    {
        "flat": Style(FLAT),
        "flat-square": Style(FLAT_SQUARE),
        "plastic": Style(PLASTIC),
        "for-the-badge": Style(FOR_THE_BADGE),
        "social": Style(SOCIAL),
    }
)
DEFAULT_STYLE: Final = "flat"


def style_named(name: str) -> Style:
    """The style called `name`, or flat for anything unknown, as shields.io's server does."""
    return STYLES.get(name, STYLES[DEFAULT_STYLE])


def render_badge(
    label: str,
    message: str,
    *,
    style: str = DEFAULT_STYLE,
    color: str,
    label_color: str = DEFAULT_LABEL_COLOR,
    link: str | None = None,
) -> str:
    """Render in the named style; text is cleaned and trimmed, links kept only if http(s)."""
    return style_named(style)(label, message, color=color, label_color=label_color, link=link)


def render_flat(
    label: str,
    message: str,
    *,
    color: str,
    label_color: str = DEFAULT_LABEL_COLOR,
    link: str | None = None,
) -> str:
    """A shields.io `flat` badge: 20 px high, rounded corners, soft gradient, text shadow."""
    return STYLES["flat"](label, message, color=color, label_color=label_color, link=link)


def badge_width(label: str, message: str, style: str = DEFAULT_STYLE) -> float:
    """Width in pixels of the badge render_badge() would draw (fractional in for-the-badge)."""
    return style_named(style).width(label, message)
