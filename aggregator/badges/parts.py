"""Pieces the Verdana styles share: the scale(.1) text trick, the text group, plain boxes."""

from __future__ import annotations

from typing import Final

from aggregator.badges.svg import AttrValue, Markup, element

# Text is drawn 10x larger inside scale(.1) for sub-pixel placement (shields PR #1132).
SCALE: Final = 10
SCALE_DOWN: Final = "scale(.1)"
FONT_FAMILY: Final = "Verdana,Geneva,DejaVu Sans,sans-serif"
GROUP_TEXT_FILL: Final = "#fff"


def with_text_fill(attrs: dict[str, AttrValue], text_color: str) -> dict[str, AttrValue]:
    """`attrs` plus a fill, unless the group's white already applies (as 6.0.0 omits it)."""
    return attrs if text_color == GROUP_TEXT_FILL else {**attrs, "fill": text_color}


def foreground(font_size: int, *texts: Markup) -> Markup:
    """The group carrying the font settings shared by every text of a badge."""
    attrs: dict[str, AttrValue] = {
        "fill": GROUP_TEXT_FILL,
        "text-anchor": "middle",
        "font-family": FONT_FAMILY,
        "text-rendering": "geometricPrecision",
        "font-size": SCALE * font_size,
    }
    return element("g", attrs, *texts)


def box(*, width: float, height: int, fill: str, x: float | None = None) -> Markup:
    """One coloured rectangle; `x` is written only when given, as badge-maker does."""
    attrs: dict[str, AttrValue] = {} if x is None else {"x": x}
    return element("rect", {**attrs, "width": width, "height": height, "fill": fill})


Stop = tuple[AttrValue, str | None, AttrValue]
"""A gradient stop: offset, colour (None keeps SVG's black default), opacity."""


def _stop(offset: AttrValue, color: str | None, opacity: AttrValue) -> Markup:
    """One gradient stop, with stop-color only when one is given."""
    attrs: dict[str, AttrValue] = {"offset": offset}
    if color is not None:
        attrs["stop-color"] = color
    attrs["stop-opacity"] = opacity
    return element("stop", attrs)


def gradient(gradient_id: str, *stops: Stop) -> Markup:
    """A top-to-bottom linear gradient."""
    return element(
        "linearGradient",
        {"id": gradient_id, "x2": 0, "y2": "100%"},
        *(_stop(*stop) for stop in stops),
    )
