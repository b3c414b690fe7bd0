"""Badge colours: shields.io names and aliases, hex values, and text contrast."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Final

# badge-maker 6.0.0 palette ("higher text contrast"), not the legacy #4c1 set.
NAMED_COLORS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "brightgreen": "#4b0",
        "green": "#67ac09",
        "yellow": "#d8b800",
        "yellowgreen": "#95991a",
        "orange": "#ea7233",
        "red": "#dd4343",
        "blue": "#007ec6",
        "grey": "#555",
        "lightgrey": "#939393",
    }
)

ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "gray": "grey",
        "lightgray": "lightgrey",
        "critical": "red",
        "important": "orange",
        "success": "brightgreen",
        "informational": "blue",
        "inactive": "lightgrey",
    }
)

DEFAULT_COLOR: Final = NAMED_COLORS["lightgrey"]
DEFAULT_LABEL_COLOR: Final = NAMED_COLORS["grey"]

# ASCII-only on purpose: \d would also accept non-ASCII digits such as "٣".
_HEX: Final = re.compile(r"#?((?:[0-9a-f]{3}){1,2})", re.ASCII | re.IGNORECASE)
_BRIGHTNESS_THRESHOLD: Final = Decimal("0.69")


def parse_color(value: str | None) -> str | None:
    """Map a name, alias or 3/6-digit hex (with or without '#') to '#rgb'/'#rrggbb', else None."""
    if value is None:
        return None
    key = value.strip().lower()
    key = ALIASES.get(key, key)
    if key in NAMED_COLORS:
        return NAMED_COLORS[key]
    match = _HEX.fullmatch(key)
    # Only the matched hex digits are returned, so no input byte reaches the SVG.
    return f"#{match.group(1)}" if match else None


def _rgb(color: str) -> tuple[int, int, int]:
    """Channels of a '#rgb' or '#rrggbb' colour."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def brightness(color: str) -> Decimal:
    """Perceived brightness 0..1 rounded to 2 places, as badge-maker computes it."""
    red, green, blue = _rgb(color)
    value = (red * 299 + green * 587 + blue * 114) / 255000
    # badge-maker compares toFixed(2) of the double, which rounds its exact value half-up.
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def text_colors(background: str) -> tuple[str, str]:
    """(text, shadow) colours readable on `background`, which must be a parsed colour."""
    if brightness(background) <= _BRIGHTNESS_THRESHOLD:
        return "#fff", "#010101"
    return "#333", "#ccc"
