"""shields.io-compatible SVG badges, drawn from the width tables with no font files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NewType, Protocol
from urllib.parse import urlsplit

from aggregator.badges.colors import DEFAULT_COLOR, DEFAULT_LABEL_COLOR, parse_color, text_colors
from aggregator.badges.widths import DEFAULT_FONT, preferred_width

Markup = NewType("Markup", str)
"""A string that is already safe to splice into the SVG."""

FONT_FAMILY: Final = "Verdana,Geneva,DejaVu Sans,sans-serif"
HORIZ_PADDING: Final = 5
# Text is drawn 10x larger inside scale(.1) for sub-pixel placement (shields PR #1132).
SCALE: Final = 10
SCALE_DOWN: Final = "scale(.1)"
SAFE_LINK_SCHEMES: Final = frozenset({"http", "https"})
FLAT_HEIGHT: Final = 20

_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
)
# XML 1.0 forbids C0 controls (bar TAB/LF/CR), surrogates and U+FFFE/U+FFFF. TAB/LF/CR
# and DEL go too: they measure 0 px yet would show as spaces, skewing the layout.
_UNSAFE_CHARS: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Drop the characters that XML 1.0 cannot carry (and the other zero-width controls)."""
    return _UNSAFE_CHARS.sub("", text)


def escape(text: str) -> Markup:
    """Escape the five XML special characters, for text nodes and attribute values alike."""
    return Markup(text.translate(_ESCAPES))


def element(name: str, attrs: Mapping[str, str | int], *children: Markup) -> Markup:
    """Render one element; every attribute value is escaped, children are already markup."""
    attr_text = "".join(f' {key}="{escape(str(value))}"' for key, value in attrs.items())
    if not children:
        return Markup(f"<{name}{attr_text}/>")
    return Markup(f"<{name}{attr_text}>{''.join(children)}</{name}>")


def safe_link(link: str | None) -> str | None:
    """`link` if it is an absolute http(s) URL without control characters, else None."""
    if not link or _UNSAFE_CHARS.search(link) or link != link.strip():
        # Browsers strip or ignore such characters, so "java\tscript:" could slip past.
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in SAFE_LINK_SCHEMES or not parts.netloc:
        return None
    return link


def accessible_text(label: str, message: str) -> str:
    """What screen readers hear: "label: message", or just the message."""
    return f"{label}: {message}" if label else message


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


def layout(label: str, message: str, *, font: str = DEFAULT_FONT) -> Layout:
    """badge-maker's box arithmetic for flat-like styles (no logo)."""
    label_width = preferred_width(label, font) if label else 0
    message_width = preferred_width(message, font)
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


def text_elements(
    content: str, *, margin: int, width: int, background: str, shadow: bool, y_shift: int = 0
) -> list[Markup]:
    """The (shadow and) text of one half, centred in its box with the scale(.1) trick."""
    if not content:
        return []
    text_color, shadow_color = text_colors(background)
    # 10 * (margin + width/2 + padding); width is odd, so this stays an integer.
    x = SCALE * (margin + HORIZ_PADDING) + SCALE * width // 2
    body = escape(content)
    text = element(
        "text",
        {
            "x": x,
            "y": 140 + y_shift,
            "transform": SCALE_DOWN,
            "fill": text_color,
            "textLength": SCALE * width,
        },
        body,
    )
    if not shadow:
        return [text]
    drop = element(
        "text",
        {
            "aria-hidden": "true",
            "x": x,
            "y": 150 + y_shift,
            "fill": shadow_color,
            "fill-opacity": ".3",
            "transform": SCALE_DOWN,
            "textLength": SCALE * width,
        },
        body,
    )
    return [drop, text]


def foreground(*texts: Markup) -> Markup:
    """The group carrying the font settings shared by every text of a badge."""
    attrs: dict[str, str | int] = {
        "fill": "#fff",
        "text-anchor": "middle",
        "font-family": FONT_FAMILY,
        "text-rendering": "geometricPrecision",
        "font-size": 110,
    }
    return element("g", attrs, *texts)


def svg_root(
    *, width: int, height: int, label: str, message: str, link: str | None, body: list[Markup]
) -> str:
    """Wrap `body` in the accessible <svg> root, and in one <a> when a safe link is given."""
    spoken = accessible_text(label, message)
    href = safe_link(link)
    content = [element("a", {"target": "_blank", "href": href}, *body)] if href else body
    attrs: dict[str, str | int] = {
        "xmlns": "http://www.w3.org/2000/svg",
        "width": width,
        "height": height,
        "role": "img",
        "aria-label": spoken,
    }
    return element("svg", attrs, element("title", {}, escape(spoken)), *content)


def _flat_background(geo: Layout, height: int, label_fill: str, fill: str) -> list[Markup]:
    """Gradient, rounded clip and the two coloured boxes of the flat style."""
    gradient = element(
        "linearGradient",
        {"id": "s", "x2": 0, "y2": "100%"},
        element("stop", {"offset": 0, "stop-color": "#bbb", "stop-opacity": ".1"}),
        element("stop", {"offset": 1, "stop-opacity": ".1"}),
    )
    clip = element(
        "clipPath",
        {"id": "r"},
        element("rect", {"width": geo.width, "height": height, "rx": 3, "fill": "#fff"}),
    )
    boxes = element(
        "g",
        {"clip-path": "url(#r)"},
        element("rect", {"width": geo.left_width, "height": height, "fill": label_fill}),
        element(
            "rect", {"x": geo.left_width, "width": geo.right_width, "height": height, "fill": fill}
        ),
        element("rect", {"width": geo.width, "height": height, "fill": "url(#s)"}),
    )
    return [gradient, clip, boxes]


def render_flat(
    label: str,
    message: str,
    *,
    color: str,
    label_color: str = DEFAULT_LABEL_COLOR,
    link: str | None = None,
) -> str:
    """A shields.io `flat` badge: 20 px high, rounded corners, soft gradient, text shadow."""
    label, message = clean_text(label), clean_text(message)
    fill = parse_color(color) or DEFAULT_COLOR
    # With no label the (zero-width) left box takes the message colour, as in badge-maker.
    label_fill = (parse_color(label_color) or DEFAULT_LABEL_COLOR) if label else fill
    geo = layout(label, message)
    texts = [
        *text_elements(
            label,
            margin=geo.label_margin,
            width=geo.label_width,
            background=label_fill,
            shadow=True,
        ),
        *text_elements(
            message,
            margin=geo.message_margin,
            width=geo.message_width,
            background=fill,
            shadow=True,
        ),
    ]
    body = [*_flat_background(geo, FLAT_HEIGHT, label_fill, fill), foreground(*texts)]
    return svg_root(
        width=geo.width, height=FLAT_HEIGHT, label=label, message=message, link=link, body=body
    )


class Renderer(Protocol):
    """Signature every badge style implements."""

    def __call__(
        self,
        label: str,
        message: str,
        *,
        color: str,
        label_color: str = ...,
        link: str | None = ...,
    ) -> str:
        """Render one badge as SVG text."""


STYLES: Final[Mapping[str, Renderer]] = MappingProxyType({"flat": render_flat})
DEFAULT_STYLE: Final = "flat"


def render_badge(
    label: str,
    message: str,
    *,
    style: str = DEFAULT_STYLE,
    color: str,
    label_color: str = DEFAULT_LABEL_COLOR,
    link: str | None = None,
) -> str:
    """Render in the named style; unknown styles fall back to flat, as shields.io does."""
    renderer = STYLES.get(style, STYLES[DEFAULT_STYLE])
    return renderer(label, message, color=color, label_color=label_color, link=link)
