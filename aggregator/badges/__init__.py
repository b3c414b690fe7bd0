"""shields.io-style SVG badges: text widths, count formatting, colours and rendering."""

from aggregator.badges.colors import parse_color
from aggregator.badges.numbers import full, metric
from aggregator.badges.render import (
    DEFAULT_STYLE,
    STYLES,
    badge_width,
    render_badge,
    render_flat,
)
from aggregator.badges.widths import preferred_width, text_width

__all__ = [
    "DEFAULT_STYLE",
    "STYLES",
    "badge_width",
    "full",
    "metric",
    "parse_color",
    "preferred_width",
    "render_badge",
    "render_flat",
    "text_width",
]
