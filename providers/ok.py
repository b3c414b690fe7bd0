"""OK.ru (Odnoklassniki): the "Class!" count of a page from the like widget's JSON form."""

from __future__ import annotations

from typing import ClassVar

from providers._simple import PAGE, OneUrlProvider, field_count, json_object
from providers.base import NetworkStatus


class OK(OneUrlProvider):
    """`{"count": "12"}` from `dk?st.cmd=extLike&tp=json`; the count is usually a string."""

    name: ClassVar[str] = "ok"
    label: ClassVar[str] = "OK.ru"
    color: ClassVar[str] = "#ee8208"
    share_url: ClassVar[str | None] = "https://connect.ok.ru/offer?url={url}&title={title}"
    status: ClassVar[NetworkStatus] = NetworkStatus.UNDOCUMENTED
    docs_url: ClassVar[str] = "https://apiok.ru/en/ext/like"
    endpoint: ClassVar[str] = "https://connect.ok.ru/dk"
    query: ClassVar[tuple[tuple[str, str], ...]] = (
        ("st.cmd", "extLike"),
        ("tp", "json"),
        ("ref", PAGE),
    )

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """OK answers -1 for a page never shared (social-likes#179): that is 0, not an error."""
        data = json_object(cls.name, body)
        return field_count(cls.name, data, "count", strings=True, zero=("-1", -1))
