"""The for-the-badge style: 28 px high, square, upper case, letter-spaced 10px Verdana."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aggregator.badges.colors import text_colors
from aggregator.badges.parts import SCALE, SCALE_DOWN, box, foreground, with_text_fill
from aggregator.badges.svg import AttrValue, Markup, accessible_text, document, element, text_node
from aggregator.badges.text import utf16_length
from aggregator.badges.widths import text_width

LABEL_FONT: Final = "verdana-10px-normal"
MESSAGE_FONT: Final = "verdana-10px-bold"
FONT_SIZE: Final = 10
HEIGHT: Final = 28
TEXT_MARGIN: Final = 12
LETTER_SPACING: Final = 1.25
BASELINE: Final = 175
_NO_TEXT: Final = Markup("")


def spaced_width(text: str, font: str) -> float:
    """Floored width plus 1.25 px per UTF-16 unit, not rounded to odd (so maybe fractional)."""
    # badge-maker skips preferredWidthOf() here so that letter spacing stays even, and
    # counts JS `.length`, so an emoji gets two spacings.
    if not text:
        return 0
    return int(text_width(text, font)) + LETTER_SPACING * utf16_length(text)


@dataclass(frozen=True)
class CapsLayout:
    """Text and box widths of an upper-cased badge, in (possibly fractional) pixels."""

    label_text_width: float
    message_text_width: float

    @property
    def label_rect_width(self) -> float:
        """Width of the label box, 0 when there is no label (the only 0 text width)."""
        if not self.label_text_width:
            return 0
        return TEXT_MARGIN + self.label_text_width + TEXT_MARGIN

    @property
    def message_rect_width(self) -> float:
        """Width of the message box."""
        return 2 * TEXT_MARGIN + self.message_text_width

    @property
    def width(self) -> float:
        """Total badge width."""
        return self.label_rect_width + self.message_rect_width


def caps_layout(label: str, message: str) -> CapsLayout:
    """Measure an already upper-cased label and message."""
    return CapsLayout(
        label_text_width=spaced_width(label, LABEL_FONT),
        message_text_width=spaced_width(message, MESSAGE_FONT),
    )


def _text(content: str, *, min_x: float, width: float, color: str, bold: bool) -> Markup:
    """One text, centred on its box and stretched to the spaced width."""
    attrs: dict[str, AttrValue] = {
        "transform": SCALE_DOWN,
        "x": SCALE * (min_x + 0.5 * width),
        "y": BASELINE,
        "textLength": SCALE * width,
    }
    if bold:
        attrs["font-weight"] = "bold"
    text_color, _ = text_colors(color)
    return text_node("text", with_text_fill(attrs, text_color), content)


@dataclass(frozen=True)
class ForTheBadgeStyle:
    """Label in normal, message in bold 10px Verdana, both upper-cased before measuring."""

    def width(self, label: str, message: str) -> float:
        """Total width in pixels; may end in .25, .5 or .75."""
        return caps_layout(label.upper(), message.upper()).width

    def render(
        self, label: str, message: str, *, fill: str, label_fill: str, link: str | None
    ) -> str:
        """The badge as SVG; with no label only the message box is drawn."""
        label, message = label.upper(), message.upper()
        geo = caps_layout(label, message)
        if label:
            boxes = [
                box(width=geo.label_rect_width, height=HEIGHT, fill=label_fill),
                box(x=geo.label_rect_width, width=geo.message_rect_width, height=HEIGHT, fill=fill),
            ]
            label_text = _text(
                label, min_x=TEXT_MARGIN, width=geo.label_text_width, color=label_fill, bold=False
            )
        else:
            boxes = [box(width=geo.message_rect_width, height=HEIGHT, fill=fill)]
            label_text = _NO_TEXT
        message_text = _text(
            message,
            min_x=geo.label_rect_width + TEXT_MARGIN,
            width=geo.message_text_width,
            color=fill,
            bold=True,
        )
        body = [
            element("g", {"shape-rendering": "crispEdges"}, *boxes),
            foreground(FONT_SIZE, label_text, message_text),
        ]
        spoken = accessible_text(label, message)
        return document(width=geo.width, height=HEIGHT, spoken=spoken, link=link, body=body)


FOR_THE_BADGE: Final = ForTheBadgeStyle()
