"""Count formatting for badge messages, matching shields.io's `metric()`."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

PREFIXES: Final = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_TENTH: Final = Decimal("0.1")
_ONE: Final = Decimal(1)


def _half_up(value: float, step: Decimal) -> Decimal:
    """Round the exact binary value of `value` half-up, as JS toFixed/Math.round do."""
    # Python's round() and format() round half to even, which would turn 1250 into
    # "1.2k" where shields prints "1.3k".
    return Decimal(value).quantize(step, rounding=ROUND_HALF_UP)


def _scaled(magnitude: int, power: int, prefix_index: int) -> str:
    """Format `magnitude` (>= 1000**power) with the prefix at `prefix_index`."""
    unit = 1000**power
    if magnitude >= unit * 1000 and prefix_index + 1 == len(PREFIXES):
        # Beyond yotta a float may overflow (and shields prints "1undefined"):
        # round half-up in integers instead.
        return f"{(2 * magnitude + unit) // (2 * unit)}{PREFIXES[prefix_index]}"
    # Float division on purpose: shields divides doubles, and so must we to round alike.
    scaled = magnitude / unit
    if scaled < 10:
        one_decimal = _half_up(scaled, _TENTH)
        if one_decimal != one_decimal.to_integral_value():
            return f"{one_decimal}{PREFIXES[prefix_index]}"
    rounded = int(_half_up(scaled, _ONE))
    if rounded < 1000:
        return f"{rounded}{PREFIXES[prefix_index]}"
    if prefix_index + 1 < len(PREFIXES):
        return f"1{PREFIXES[prefix_index + 1]}"
    return f"{rounded}{PREFIXES[prefix_index]}"


def metric(n: int) -> str:
    """Short SI form of a count: 999 -> "999", 1100 -> "1.1k", 999_500 -> "1M"."""
    magnitude = abs(n)
    for index in range(len(PREFIXES) - 1, -1, -1):
        if magnitude >= 1000 ** (index + 1):
            text = _scaled(magnitude, index + 1, index)
            return text if n > 0 else f"-{text}"
    return str(n)


def full(n: int) -> str:
    """The count as plain digits, e.g. 12345 -> "12345"."""
    return str(int(n))
