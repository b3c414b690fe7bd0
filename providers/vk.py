"""VK (VKontakte): the share count of a page from the share widget's JS endpoint."""

from __future__ import annotations

from typing import ClassVar

from providers._simple import PAGE, OneUrlProvider, call_arguments, digits_count, excerpt
from providers.base import NetworkStatus, ParseError


class VK(OneUrlProvider):
    """`VK.Share.count(index, count);` JavaScript, not JSON."""

    name: ClassVar[str] = "vk"
    label: ClassVar[str] = "VK"
    color: ClassVar[str] = "#0077ff"
    share_url: ClassVar[str | None] = "https://vk.com/share.php?url={url}&title={title}"
    status: ClassVar[NetworkStatus] = NetworkStatus.UNDOCUMENTED
    docs_url: ClassVar[str] = "https://vk.com/dev/widget_share"
    # Always https: the http endpoint only redirects (social-likes changelog 3.0.11).
    endpoint: ClassVar[str] = "https://vk.com/share.php"
    # Echoed back as the first argument so a page can route several replies; one is enough here.
    index: ClassVar[str] = "1"
    query: ClassVar[tuple[tuple[str, str], ...]] = (
        ("act", "count"),
        ("index", index),
        ("url", PAGE),
    )

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """The SECOND argument is the count (goodshare#34 read the first, our index)."""
        args = [arg.strip() for arg in call_arguments(cls.name, body, "VK.Share.count").split(",")]
        if len(args) != 2 or args[0] != cls.index:
            raise ParseError(
                f"{cls.name}: expected VK.Share.count({cls.index}, N), got {excerpt(args)}"
            )
        return digits_count(cls.name, args[1], "count")
