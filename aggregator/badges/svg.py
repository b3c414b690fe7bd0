"""Safe SVG building: escaping, elements, numbers as JS prints them, the accessible root."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, NewType
from urllib.parse import urlsplit

from aggregator.badges.text import has_unsafe_chars

Markup = NewType("Markup", str)
"""A string that is already safe to splice into the SVG."""

AttrValue = str | int | float
SAFE_LINK_SCHEMES: Final = frozenset({"http", "https"})

_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
)


def escape(text: str) -> Markup:
    """Escape the five XML special characters, for text nodes and attribute values alike."""
    return Markup(text.translate(_ESCAPES))


def number(value: float) -> str:
    """A coordinate as JS's String(n) writes it: 78, 126.5, 1021.25."""
    if isinstance(value, int):
        return str(value)
    # Both languages print the shortest round-tripping digits; only whole floats
    # differ ("78.0" here, "78" in JS). Badge geometry never reaches exponent form.
    return str(int(value)) if value.is_integer() else repr(value)


def _attr(value: AttrValue) -> str:
    """One attribute value, escaped."""
    return escape(value) if isinstance(value, str) else number(value)


def element(name: str, attrs: Mapping[str, AttrValue], *children: Markup) -> Markup:
    """Render one element; every attribute value is escaped, children are already markup."""
    attr_text = "".join(f' {key}="{_attr(value)}"' for key, value in attrs.items())
    if not children:
        return Markup(f"<{name}{attr_text}/>")
    return Markup(f"<{name}{attr_text}>{''.join(children)}</{name}>")


def text_node(name: str, attrs: Mapping[str, AttrValue], content: str) -> Markup:
    """An element holding escaped text; empty text still gets an open/close pair."""
    return element(name, attrs, escape(content))


def safe_link(link: str | None) -> str | None:
    """`link` if it is an absolute http(s) URL without control characters, else None."""
    if not link or has_unsafe_chars(link) or link != link.strip():
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


def document(
    *, width: float, height: int, spoken: str, link: str | None, body: Iterable[Markup]
) -> str:
    """The accessible <svg> root around `body`, wrapped in one <a> when the link is safe."""
    href = safe_link(link)
    content = [element("a", {"target": "_blank", "href": href}, *body)] if href else list(body)
    attrs: dict[str, AttrValue] = {
        "xmlns": "http://www.w3.org/2000/svg",
        "width": width,
        "height": height,
        "role": "img",
        "aria-label": spoken,
    }
    return element("svg", attrs, text_node("title", {}, spoken), *content)
