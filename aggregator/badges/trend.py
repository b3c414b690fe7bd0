"""The trend badge: a label, then the count and a line through its last days' counts.

Flat-square like the share bar, and for the same reason: no ids that could collide with those
of another badge inlined on the same page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aggregator.badges.bar import FONT_SIZE, HEIGHT, PADDING, _text
from aggregator.badges.colors import text_colors
from aggregator.badges.parts import box, foreground
from aggregator.badges.svg import Markup, document, element, number
from aggregator.badges.text import clean_text, prepare
from aggregator.badges.widths import preferred_width

LINE_WIDTH: Final = 60
# Space between the line's extremes and the top and bottom edges, in px.
INSET: Final = 4
STROKE: Final = 1.5


def line_points(values: Sequence[int], x: float, width: float) -> str:
    """A polyline's points through `values`, lowest at the bottom, spread over `width` from `x`."""
    low, high = min(values), max(values)
    usable = HEIGHT - 2 * INSET
    # A count that did not move (or one day alone) is a level line through the middle.
    ys = [
        HEIGHT - INSET - (v - low) * usable / (high - low) if high > low else HEIGHT / 2
        for v in values
    ]
    if len(ys) == 1:
        ys *= 2
    step = width / (len(ys) - 1)
    return " ".join(
        f"{number(round(x + i * step, 1))},{number(round(y, 1))}" for i, y in enumerate(ys)
    )


def render_trend(
    label: str, message: str, values: Sequence[int], *, spoken: str, fill: str, label_fill: str
) -> str:
    """The badge as SVG: `label`, then `message` and the line of `values` (at least one) on
    `fill`; screen readers hear `spoken`."""
    label, message = prepare(label), prepare(message)
    rects: list[Markup] = []
    texts: list[Markup] = []
    x = 0
    if label:
        label_width = preferred_width(label)
        x = label_width + 2 * PADDING
        rects.append(box(width=x, height=HEIGHT, fill=label_fill))
        texts.append(_text(0, label_width, label, label_fill))
    message_width = preferred_width(message)
    line_x = x + message_width + 2 * PADDING
    right = line_x - x + LINE_WIDTH + PADDING
    rects.append(box(x=x, width=right, height=HEIGHT, fill=fill))
    texts.append(_text(x, message_width, message, fill))
    line = element(
        "polyline",
        {
            "points": line_points(values, line_x, LINE_WIDTH),
            "fill": "none",
            "stroke": text_colors(fill)[0],
            "stroke-width": STROKE,
            "stroke-linejoin": "round",
            "stroke-linecap": "round",
        },
    )
    body = [element("g", {"shape-rendering": "crispEdges"}, *rects), foreground(FONT_SIZE, *texts)]
    return document(
        width=x + right, height=HEIGHT, spoken=clean_text(spoken), link=None, body=[*body, line]
    )
