"""Badge text as badge-maker's JavaScript sees it: cleaned, trimmed, re-cased, counted."""

from __future__ import annotations

import re
from typing import Final

# XML 1.0 forbids C0 controls (bar TAB/LF/CR), surrogates and U+FFFE/U+FFFF. TAB/LF/CR
# and DEL go too: they measure 0 px yet would show as spaces, skewing the layout.
_UNSAFE_CHARS: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# What JS String.prototype.trim() removes; Python's strip() knows another set
# (it keeps U+FEFF, drops U+001C..U+001F and U+0085).
_JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_LAST_BMP: Final = 0xFFFF


def has_unsafe_chars(text: str) -> bool:
    """Whether `text` holds a character that XML 1.0 cannot carry (or another control)."""
    return _UNSAFE_CHARS.search(text) is not None


def clean_text(text: str) -> str:
    """Drop the characters that XML 1.0 cannot carry (and the other zero-width controls)."""
    return _UNSAFE_CHARS.sub("", text)


def prepare(text: str) -> str:
    """Clean `text`, then trim it the way makeBadge() does before measuring."""
    return clean_text(text).strip(_JS_WHITESPACE)


def capitalize(text: str) -> str:
    """Upper-case the first character only, as badge-maker's social style does."""
    # JS charAt(0) is one UTF-16 unit: an astral first character is half a surrogate
    # pair there, which toUpperCase() leaves alone, so we leave it alone too.
    if not text or ord(text[0]) > _LAST_BMP:
        return text
    return text[0].upper() + text[1:]


def utf16_length(text: str) -> int:
    """JS `.length`: astral characters count twice (for-the-badge spaces per unit)."""
    return len(text) + sum(1 for char in text if ord(char) > _LAST_BMP)
