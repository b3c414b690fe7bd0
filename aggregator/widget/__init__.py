"""The share widget: the bar as a standalone HTML page, and the script that embeds it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

from markupsafe import Markup

from aggregator.badges import metric, parse_color
from aggregator.badges.colors import text_colors
from aggregator.badges.svg import safe_link
from aggregator.templates import package_templates

NO_COUNT: Final = "\N{EN DASH}"
FALLBACK_COLOR: Final = "#555555"


def asset(name: str) -> str:
    """A file of the package's static/ folder, wherever the package is installed."""
    return files(__name__).joinpath("static", name).read_text(encoding="utf-8")


# Read at import so that no request waits on the disk.
EMBED_JS: Final = asset("embed.js")
FRAME_JS: Final = asset("frame.js")
# The page's only script is inlined and allowed by its hash, so the CSP needs no 'self' script.
FRAME_JS_SOURCE: Final = (
    "'sha256-" + base64.b64encode(hashlib.sha256(FRAME_JS.encode()).digest()).decode() + "'"
)

_TEMPLATE: Final = package_templates(__name__).get_template("widget.html")


@dataclass(frozen=True)
class Button:
    """One network in the bar: its count and, where the network has one, its share page."""

    label: str
    count: int | None
    color: str
    link: str | None

    @property
    def text_color(self) -> str:
        return text_colors(self.color)[0]

    @property
    def shown(self) -> str:
        return NO_COUNT if self.count is None else metric(self.count)

    @property
    def title(self) -> str:
        counted = "no count yet" if self.count is None else f"{self.count} shares"
        return f"Share on {self.label} ({counted})" if self.link else f"{self.label}: {counted}"

    @classmethod
    def make(cls, label: str, count: int | None, color: str, link: str | None) -> Button:
        """A button with a valid colour, whose link is dropped unless it is plain http(s)."""
        return cls(label, count, parse_color(color) or FALLBACK_COLOR, safe_link(link))


def render_bar(url: str, total: int | None, buttons: Sequence[Button]) -> str:
    """The bar: the total first, then every network with its count and share button."""
    return _TEMPLATE.render(
        heading=f"Shares of {url}",
        total=NO_COUNT if total is None else metric(total),
        networks=buttons,
        message="",
        frame_script=Markup(FRAME_JS),
    )


def render_message(message: str) -> str:
    """The widget page saying why it shows no bar."""
    return _TEMPLATE.render(
        heading="flares", message=message, networks=(), frame_script=Markup(FRAME_JS)
    )
