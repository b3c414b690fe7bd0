"""The share bar: a lead box ("251 Flares") and one button per network, in one SVG.

Flat-square look (square boxes, no gloss, no shadow) so that the bar needs no ids, whose
clip paths would otherwise collide between buttons or with a badge inlined on the same page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aggregator.badges import parse_color, preferred_width
from aggregator.badges.colors import text_colors
from aggregator.badges.parts import SCALE, SCALE_DOWN, box, foreground, with_text_fill
from aggregator.badges.svg import AttrValue, Markup, document, element, text_node
from aggregator.badges.text import prepare

HEIGHT: Final = 20
PADDING: Final = 5
GAP: Final = 4
FONT_SIZE: Final = 11
BASELINE: Final = 140
LEAD_COLOR: Final = "#007ec6"
COUNT_COLOR: Final = "#555"


@dataclass(frozen=True)
class Segment:
    """One network's button: its name on its brand colour, then its count (None hides it)."""

    label: str
    count: str | None
    color: str


Button = list[tuple[str, str]]
"""Boxes drawn flush against each other: (text, fill) pairs."""


def _text(x: int, text_width: int, content: str, fill: str) -> Markup:
    """`content` centred in the box that starts at `x`, readable on `fill`."""
    text_color, _ = text_colors(fill)
    # Tenths of a pixel; text_width is odd, so the centre is a whole number.
    attrs: dict[str, AttrValue] = {
        "x": SCALE * (x + PADDING) + SCALE * text_width // 2,
        "y": BASELINE,
        "transform": SCALE_DOWN,
        "textLength": SCALE * text_width,
    }
    return text_node("text", with_text_fill(attrs, text_color), content)


def _buttons(lead: str, segments: Sequence[Segment]) -> list[Button]:
    """The lead on blue, then each network's name on its colour and its count on grey."""
    buttons = [[(prepare(lead), LEAD_COLOR)]]
    for seg in segments:
        # A plugin's colour is only trusted once parsed.
        button = [(prepare(seg.label), parse_color(seg.color) or COUNT_COLOR)]
        if seg.count is not None:
            button.append((prepare(seg.count), COUNT_COLOR))
        buttons.append(button)
    return buttons


def render_bar(lead: str, segments: Sequence[Segment]) -> str:
    """The bar as SVG; screen readers hear every button: "251 Flares, Buffer 3, ..."."""
    buttons = _buttons(lead, segments)
    rects: list[Markup] = []
    texts: list[Markup] = []
    x = 0
    for button in buttons:
        if rects:
            x += GAP
        for content, fill in button:
            text_width = preferred_width(content)
            width = text_width + 2 * PADDING
            rects.append(box(x=x, width=width, height=HEIGHT, fill=fill))
            texts.append(_text(x, text_width, content, fill))
            x += width
    spoken = ", ".join(" ".join(content for content, _ in button) for button in buttons)
    body = [element("g", {"shape-rendering": "crispEdges"}, *rects), foreground(FONT_SIZE, *texts)]
    return document(width=x, height=HEIGHT, spoken=spoken, link=None, body=body)
