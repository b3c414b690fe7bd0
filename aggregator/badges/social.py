"""The social style: a light label button and a count bubble, in bold 11px Helvetica."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aggregator.badges.parts import SCALE, SCALE_DOWN, gradient
from aggregator.badges.svg import (
    AttrValue,
    Markup,
    accessible_text,
    document,
    element,
    number,
    text_node,
)
from aggregator.badges.text import capitalize
from aggregator.badges.widths import preferred_width

FONT: Final = "helvetica-11px-bold"
FONT_FAMILY: Final = "Helvetica Neue,Helvetica,Arial,sans-serif"
OUTER_HEIGHT: Final = 20
# Boxes start at y=.5 and stand 19 high so their 1 px strokes land on whole pixels.
INNER_HEIGHT: Final = 19
LABEL_PADDING: Final = 5
MESSAGE_PADDING: Final = 4
GUTTER: Final = 6
BORDER: Final = "#d5d5d5"
BUBBLE_FILL: Final = "#fafafa"
HOVER_CSS: Final = "a:hover #llink{fill:url(#b);stroke:#ccc}a:hover #rlink{fill:#4183c4}"


@dataclass(frozen=True)
class SocialLayout:
    """Widths of the label button and the message bubble, in whole pixels."""

    label_text_width: int
    message_text_width: int
    has_message: bool

    @property
    def label_rect_width(self) -> int:
        """Width of the label button."""
        return self.label_text_width + 2 * LABEL_PADDING

    @property
    def message_rect_width(self) -> int:
        """Width of the message bubble."""
        return self.message_text_width + 2 * MESSAGE_PADDING

    @property
    def bubble_x(self) -> int:
        """Where the bubble's notch starts: the button, then the gutter."""
        return self.label_rect_width + GUTTER

    @property
    def width(self) -> int:
        """Total width: the button with its stroke, plus the bubble when there is a message."""
        bubble = GUTTER + self.message_rect_width if self.has_message else 0
        return self.label_rect_width + 1 + bubble


def social_layout(label: str, message: str) -> SocialLayout:
    """Measure an already capitalised label and the message."""
    return SocialLayout(
        label_text_width=preferred_width(label, FONT),
        message_text_width=preferred_width(message, FONT),
        has_message=bool(message),
    )


def _texts(content: str, *, x: float, width: int, text_id: str | None = None) -> list[Markup]:
    """A white emboss 1 px below, then the text itself (fill comes from the group)."""
    length = SCALE * width
    shadow: dict[str, AttrValue] = {
        "aria-hidden": "true",
        "x": x,
        "y": 150,
        "fill": "#fff",
        "transform": SCALE_DOWN,
        "textLength": length,
    }
    ident: dict[str, AttrValue] = {} if text_id is None else {"id": text_id}
    text: dict[str, AttrValue] = {
        **ident,
        "x": x,
        "y": 140,
        "transform": SCALE_DOWN,
        "textLength": length,
    }
    return [text_node("text", shadow, content), text_node("text", text, content)]


def _rounded(x: AttrValue, width: int, **extra: AttrValue) -> dict[str, AttrValue]:
    """Attributes of a stroked, rounded, half-pixel-aligned box."""
    return {"x": x, "y": ".5", "width": width, "height": INNER_HEIGHT, "rx": 2, **extra}


def _frame(geo: SocialLayout) -> Markup:
    """The label button and, with a message, the bubble with its notch."""
    parts = [
        element(
            "rect", {"stroke": "none", "fill": "#fcfcfc", **_rounded(".5", geo.label_rect_width)}
        )
    ]
    if geo.has_message:
        main_x = geo.bubble_x + 0.5
        notch: dict[str, AttrValue] = {
            "x": geo.bubble_x,
            "y": 7.5,
            "width": ".5",
            "height": 5,
            "stroke": BUBBLE_FILL,
        }
        parts += [
            element("rect", _rounded(main_x, geo.message_rect_width, fill=BUBBLE_FILL)),
            element("rect", notch),
            element("path", {"d": f"M{number(main_x)} 6.5 l-3 3v1 l3 3", "fill": BUBBLE_FILL}),
        ]
    return element("g", {"stroke": BORDER}, *parts)


def _foreground(label: str, message: str, geo: SocialLayout) -> Markup:
    """The hover target over the button, then the texts in bold Helvetica."""
    hover: dict[str, AttrValue] = {"id": "llink", "stroke": BORDER, "fill": "url(#a)"}
    items = [
        element("rect", {**hover, **_rounded(".5", geo.label_rect_width)}),
        *_texts(
            label,
            x=SCALE * (geo.label_text_width / 2 + LABEL_PADDING),
            width=geo.label_text_width,
        ),
    ]
    if geo.has_message:
        items += _texts(
            message,
            x=SCALE * (geo.bubble_x + geo.message_rect_width / 2),
            width=geo.message_text_width,
            text_id="rlink",
        )
    attrs: dict[str, AttrValue] = {
        # Always hidden: a one-link badge is an image, and the root names it.
        "aria-hidden": "true",
        "fill": "#333",
        "text-anchor": "middle",
        "font-family": FONT_FAMILY,
        "text-rendering": "geometricPrecision",
        "font-weight": 700,
        "font-size": "110px",
        "line-height": "14px",
    }
    return element("g", attrs, *items)


@dataclass(frozen=True)
class SocialStyle:
    """GitHub-button look; it has fixed colours, so `fill` and `label_fill` are unused."""

    def width(self, label: str, message: str) -> int:
        """Total width in pixels, measured on the capitalised label."""
        return social_layout(capitalize(label), message).width

    def render(
        self, label: str, message: str, *, fill: str, label_fill: str, link: str | None
    ) -> str:
        """The badge as SVG; an empty message leaves out the bubble."""
        label = capitalize(label)
        geo = social_layout(label, message)
        body = [
            text_node("style", {}, HOVER_CSS),
            gradient("a", (0, "#fcfcfc", 0), (1, None, ".1")),
            gradient("b", (0, "#ccc", ".1"), (1, None, ".1")),
            _frame(geo),
            _foreground(label, message, geo),
        ]
        spoken = accessible_text(label, message)
        return document(width=geo.width, height=OUTER_HEIGHT, spoken=spoken, link=link, body=body)


SOCIAL: Final = SocialStyle()
