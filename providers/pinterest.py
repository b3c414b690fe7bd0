"""Pinterest: the pins of a page, from the widget's JSONP count endpoint."""

from __future__ import annotations

from typing import ClassVar

from providers._simple import PAGE, OneUrlProvider, field_count, jsonp_object
from providers.base import NetworkStatus


class Pinterest(OneUrlProvider):
    """`receiveCount({"url": ..., "count": N})`; the count may be a string, "-" meaning none."""

    name: ClassVar[str] = "pinterest"
    label: ClassVar[str] = "Pinterest"
    color: ClassVar[str] = "#e60023"
    share_url: ClassVar[str | None] = (
        "https://www.pinterest.com/pin/create/button/?url={url}&description={title}"
    )
    status: ClassVar[NetworkStatus] = NetworkStatus.UNDOCUMENTED
    # Pinterest never documented the endpoint; Shariff's backend is its best public reference.
    docs_url: ClassVar[str] = (
        "https://github.com/heiseonline/shariff-backend-php/blob/HEAD/src/Backend/Pinterest.php"
    )
    endpoint: ClassVar[str] = "https://api.pinterest.com/v1/urls/count.json"
    callback: ClassVar[str] = "receiveCount"
    query: ClassVar[tuple[tuple[str, str], ...]] = (("callback", callback), ("url", PAGE))
    # Pinterest counts http:// and https:// as one page (Jetpack sharing.js): never sum both.
    merges_variants: ClassVar[frozenset[str]] = frozenset({"scheme"})

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """Always JSONP; "-" is Pinterest's "no count" (Sharrre PR #49), i.e. no pins."""
        data = jsonp_object(cls.name, body, cls.callback)
        return field_count(cls.name, data, "count", strings=True, zero=("-",))
