"""The flat family (flat, flat-square, plastic): two boxes side by side, 11px Verdana."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aggregator.badges.colors import text_colors
from aggregator.badges.parts import (
    SCALE,
    SCALE_DOWN,
    Stop,
    box,
    foreground,
    gradient,
    with_text_fill,
)
from aggregator.badges.svg import AttrValue, Markup, accessible_text, document, element, text_node
from aggregator.badges.widths import DEFAULT_FONT, preferred_width

HORIZ_PADDING: Final = 5
FONT_SIZE: Final = 11
# Baseline of an unshifted style, in scaled units; the shadow sits 1 px (10 units) lower.
BASELINE: Final = 140
SHADOW_DROP: Final = 10
_NO_TEXT: Final = Markup("")


@dataclass(frozen=True)
class Layout:
    """Horizontal geometry of a two-part badge, in whole pixels."""

    label_width: int
    message_width: int
    left_width: int
    right_width: int
    label_margin: int
    message_margin: int

    @property
    def width(self) -> int:
        """Total badge width."""
        return self.left_width + self.right_width


def layout(label: str, message: str) -> Layout:
    """badge-maker's box arithmetic for the flat family (no logo)."""
    label_width = preferred_width(label, DEFAULT_FONT) if label else 0
    message_width = preferred_width(message, DEFAULT_FONT)
    left_width = label_width + 2 * HORIZ_PADDING if label else 0
    # badge-maker's offsets: the message text starts 1 px into the label box, and
    # 1 px in from the edge when there is no label.
    message_margin = left_width - (1 if message else 0) + (0 if label else 1)
    return Layout(
        label_width=label_width,
        message_width=message_width,
        left_width=left_width,
        right_width=message_width + 2 * HORIZ_PADDING,
        label_margin=1,
        message_margin=message_margin,
    )


@dataclass(frozen=True)
class Finish:
    """Rounded corners clipped over a gloss gradient, as flat and plastic have."""

    corner_radius: int
    stops: tuple[Stop, ...]


@dataclass(frozen=True)
class FlatStyle:
    """One member of the family; the members differ only in these numbers."""

    height: int
    vertical_margin: int
    shadow: bool
    # None: square corners with crisp edges and no gradient (flat-square).
    finish: Finish | None

    def width(self, label: str, message: str) -> int:
        """Total width in pixels."""
        return layout(label, message).width

    def render(
        self, label: str, message: str, *, fill: str, label_fill: str, link: str | None
    ) -> str:
        """The badge as SVG; with no label the empty left box takes the message colour."""
        geo = layout(label, message)
        left_fill = label_fill if label else fill
        texts = foreground(
            FONT_SIZE,
            self._text(label, margin=geo.label_margin, width=geo.label_width, background=left_fill),
            self._text(
                message, margin=geo.message_margin, width=geo.message_width, background=fill
            ),
        )
        boxes = [
            box(width=geo.left_width, height=self.height, fill=left_fill),
            box(x=geo.left_width, width=geo.right_width, height=self.height, fill=fill),
        ]
        body = [*self._defs(geo.width), self._background(geo.width, boxes), texts]
        spoken = accessible_text(label, message)
        return document(width=geo.width, height=self.height, spoken=spoken, link=link, body=body)

    def _defs(self, width: int) -> list[Markup]:
        """Blur filter for the shadow, gloss gradient and rounded clip, where the style has them."""
        defs: list[Markup] = []
        if self.shadow:
            blur = element("feGaussianBlur", {"stdDeviation": "16"})
            defs.append(element("filter", {"id": "blur"}, blur))
        if self.finish is not None:
            radius = self.finish.corner_radius
            rect = element("rect", {"width": width, "height": self.height, "rx": radius})
            defs += [gradient("s", *self.finish.stops), element("clipPath", {"id": "r"}, rect)]
        return defs

    def _background(self, width: int, boxes: list[Markup]) -> Markup:
        """The coloured boxes, glossed and clipped, or square with crisp edges."""
        if self.finish is None:
            return element("g", {"shape-rendering": "crispEdges"}, *boxes)
        gloss = box(width=width, height=self.height, fill="url(#s)")
        return element("g", {"clip-path": "url(#r)"}, *boxes, gloss)

    def _text(self, content: str, *, margin: int, width: int, background: str) -> Markup:
        """The text of one half (under its shadow), centred in its box."""
        if not content:
            return _NO_TEXT
        text_color, shadow_color = text_colors(background)
        # 10 * (margin + width/2 + padding); width is odd, so this stays an integer.
        x = SCALE * (margin + HORIZ_PADDING) + SCALE * width // 2
        y = BASELINE + self.vertical_margin
        length = SCALE * width
        if not self.shadow:
            attrs: dict[str, AttrValue] = {
                "x": x,
                "y": y,
                "textLength": length,
                "transform": SCALE_DOWN,
            }
            return text_node("text", with_text_fill(attrs, text_color), content)
        drop = y + SHADOW_DROP
        shadows = element(
            "g",
            {"aria-hidden": "true", "fill": shadow_color},
            text_node(
                "text",
                {
                    "x": x,
                    "y": drop,
                    "fill-opacity": ".8",
                    "filter": "url(#blur)",
                    "textLength": length,
                },
                content,
            ),
            text_node(
                "text", {"x": x, "y": drop, "fill-opacity": ".3", "textLength": length}, content
            ),
        )
        text = text_node(
            "text", with_text_fill({"x": x, "y": y, "textLength": length}, text_color), content
        )
        return element("g", {"transform": SCALE_DOWN}, shadows, text)


FLAT: Final = FlatStyle(
    height=20,
    vertical_margin=0,
    shadow=True,
    finish=Finish(corner_radius=3, stops=((0, "#bbb", ".1"), (1, None, ".1"))),
)
FLAT_SQUARE: Final = FlatStyle(height=20, vertical_margin=0, shadow=False, finish=None)
PLASTIC: Final = FlatStyle(
    height=18,
    vertical_margin=-10,
    shadow=True,
    finish=Finish(
        corner_radius=4,
        stops=((0, "#fff", ".7"), (".1", "#aaa", ".1"), (".9", "#000", ".3"), (1, "#000", ".5")),
    ),
)
