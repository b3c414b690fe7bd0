"""Hatena Bookmark: bookmark counts, batched up to 50 URLs per request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from providers.base import (
    NetworkStatus,
    ParseError,
    Provider,
    ProviderRequest,
    count_value,
    json_body,
    rebase,
)


class Hatena(Provider):
    """Hatena Bookmark counts from the batch endpoint, or the single one for a lone URL."""

    name: ClassVar[str] = "hatena"
    label: ClassVar[str] = "Hatena Bookmark"
    color: ClassVar[str] = "#00a4de"
    share_url: ClassVar[str | None] = (
        "https://b.hatena.ne.jp/add?mode=confirm&url={url}&title={title}"
    )
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    docs_url: ClassVar[str | None] = (
        "https://developer.hatena.ne.jp/ja/documents/bookmark/apis/getcount"
    )
    endpoint: ClassVar[str] = "https://bookmark.hatenaapis.com/count/entries"
    single_endpoint: ClassVar[str] = "https://bookmark.hatenaapis.com/count/entry"
    batch_size: ClassVar[int] = 50
    # Fetchers pause a few seconds between batch calls; stay as polite.
    budget: ClassVar[tuple[int, float]] = (20, 60.0)
    concurrency: ClassVar[int] = 1

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        """One URL goes to /count/entry; several repeat `url` on /count/entries."""
        if not 1 <= len(urls) <= cls.batch_size:
            raise ValueError(f"{cls.name} takes 1 to {cls.batch_size} URLs, got {len(urls)}")
        endpoint = cls.single_endpoint if len(urls) == 1 else cls.endpoint
        params = tuple(("url", url) for url in urls)
        return ProviderRequest(url=rebase(endpoint, base_url), params=params)

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        """Read the single endpoint's bare integer or the batch endpoint's object, by len(urls)."""
        if len(urls) == 1:
            return {urls[0]: cls._parse_single(body)}
        return cls._parse_batch(urls, body)

    @classmethod
    def _parse_single(cls, body: bytes) -> int:
        """A bare integer; an empty body is how Hatena says 0."""
        text = body.strip().decode("utf-8", errors="replace")
        if not text:
            return 0
        # Digits only: int() alone would also take "+1", "1_0" or non-ASCII digits.
        return count_value(cls.name, text[:40], "single-entry body", strings=True)

    @classmethod
    def _parse_batch(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        """An object of URL -> count; a URL it leaves out has 0 bookmarks."""
        data = json_body(cls.name, body)
        if not isinstance(data, dict):
            raise ParseError(f"{cls.name}: batch body is not an object")
        counts = {
            key: count_value(cls.name, value, f"count for {key!r}") for key, value in data.items()
        }
        return {url: counts.get(url, 0) for url in urls}
