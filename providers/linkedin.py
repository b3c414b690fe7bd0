"""LinkedIn: the retired inShare counter (countserv), for compatible mirrors of its format."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from providers._simple import PAGE, OneUrlProvider, field_count, json_object, jsonp_object
from providers.base import NetworkStatus


class LinkedIn(OneUrlProvider):
    """`{"count": N, "fCnt": "N", ...}` as JSON, or wrapped in `IN.Tags.Share.handleCount(...)`."""

    name: ClassVar[str] = "linkedin"
    label: ClassVar[str] = "LinkedIn"
    color: ClassVar[str] = "#0a66c2"
    share_url: ClassVar[str | None] = "https://www.linkedin.com/sharing/share-offsite/?url={url}"
    # LinkedIn removed the counter and its data on 2018-02-07; the endpoint 404s since mid-2019.
    status: ClassVar[NetworkStatus] = NetworkStatus.RETIRED
    status_since: ClassVar[date] = date(2018, 2, 7)
    docs_url: ClassVar[str] = (
        "https://developer.linkedin.com/blog/posts/2018/deprecating-the-inshare-counter"
    )
    endpoint: ClassVar[str] = "https://www.linkedin.com/countserv/count/share"
    query: ClassVar[tuple[tuple[str, str], ...]] = (("url", PAGE), ("format", "json"))
    # What countserv wrapped its answer in for format=jsonp (or a callback).
    callback: ClassVar[str] = "IN.Tags.Share.handleCount"
    enabled_by_default: ClassVar[bool] = False

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """`count` of the JSON or JSONP answer; fCnt is only its display string."""
        if body.lstrip().startswith(cls.callback.encode()):
            data = jsonp_object(cls.name, body, cls.callback)
        else:
            data = json_object(cls.name, body)
        return field_count(cls.name, data, "count")
