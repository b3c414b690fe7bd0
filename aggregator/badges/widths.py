"""Text widths from anafanafo's per-character tables, the way shields.io measures badge text."""

from __future__ import annotations

import json
from bisect import bisect_right
from functools import cache
from importlib import resources
from typing import Final, NamedTuple

DEFAULT_FONT: Final = "verdana-11px-normal"
# Only names listed here are ever turned into a resource path. The 10px pair serves
# for-the-badge, the bold Helvetica the social style.
FONTS: Final = frozenset(
    {DEFAULT_FONT, "verdana-10px-normal", "verdana-10px-bold", "helvetica-11px-bold"}
)


class WidthTable(NamedTuple):
    """Sorted code-point ranges split into parallel tuples for bisecting."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    widths: tuple[float, ...]


@cache
def load_table(font: str = DEFAULT_FONT) -> WidthTable:
    """Read a font's `[first_cp, last_cp, width]` list from package data, once per font."""
    if font not in FONTS:
        raise ValueError(f"unknown badge font: {font!r}")
    source = resources.files("aggregator.badges").joinpath("fonts", f"{font}.json")
    rows = json.loads(source.read_text(encoding="utf-8"))
    return WidthTable(
        starts=tuple(int(row[0]) for row in rows),
        ends=tuple(int(row[1]) for row in rows),
        widths=tuple(float(row[2]) for row in rows),
    )


def _lookup(table: WidthTable, code_point: int) -> float | None:
    """Width of one code point, or None when no range holds it."""
    index = bisect_right(table.starts, code_point) - 1
    if index >= 0 and code_point <= table.ends[index]:
        return table.widths[index]
    return None


def _is_control(code_point: int) -> bool:
    """The C0 controls and DEL, which the consumer treats as zero-width."""
    return code_point <= 0x1F or code_point == 0x7F


def char_width(code_point: int, font: str = DEFAULT_FONT) -> float:
    """Advance width of one code point; unknown ones are guessed as wide as "m"."""
    if _is_control(code_point):
        return 0.0
    table = load_table(font)
    width = _lookup(table, code_point)
    if width is None:
        width = _lookup(table, ord("m"))
    return width if width is not None else 0.0


def text_width(text: str, font: str = DEFAULT_FONT) -> float:
    """Sum of the per-code-point widths of `text`, in pixels at the table's size."""
    total = 0.0
    # A plain left-to-right loop, not sum(): Python 3.12+ sum() compensates float
    # error, and JS's naive order decides where floor() lands on a boundary.
    for char in text:
        total += char_width(ord(char), font)
    return total


def round_up_to_odd(value: int) -> int:
    """Next odd integer at or above `value`."""
    return value + 1 if value % 2 == 0 else value


def preferred_width(text: str, font: str = DEFAULT_FONT) -> int:
    """Box width shields draws for `text`: floor of the width, rounded up to odd."""
    # Odd widths centre text on a pixel boundary (anafanafo's "pixel grid alignment").
    return round_up_to_odd(int(text_width(text, font)))
