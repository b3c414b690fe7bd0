"""Hacker News through the Algolia HN Search API: the points of the stories that link a page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from providers.base import (
    NetworkStatus,
    ParseError,
    Provider,
    ProviderRequest,
    count_value,
    json_body,
    one_url,
    rebase,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}

# (scheme, userinfo, host, port or None when default, path, query)
_PageKey = tuple[str, str, str, int | None, str, str]


def _page_key(url: str) -> _PageKey | None:
    """The parts that make two URLs the same page here; None when the URL cannot be split."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return (scheme, userinfo, parts.hostname or "", port, parts.path, parts.query)


class HackerNews(Provider):
    """Sum of the points of HN stories whose URL is exactly the page."""

    name: ClassVar[str] = "hackernews"
    label: ClassVar[str] = "Hacker News"
    color: ClassVar[str] = "#ff6600"
    share_url: ClassVar[str | None] = "https://news.ycombinator.com/submitlink?u={url}&t={title}"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    docs_url: ClassVar[str | None] = "https://hn.algolia.com/api"
    endpoint: ClassVar[str] = "https://hn.algolia.com/api/v1/search"
    batch_size: ClassVar[int] = 1
    # Algolia allows 10,000 requests per hour per IP.
    budget: ClassVar[tuple[int, float]] = (10_000, 3600.0)
    concurrency: ClassVar[int] = 8
    # Algolia returns at most 1,000 hits whatever the page (algolia/hn-search#230).
    hits_per_page: ClassVar[int] = 1000

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, credentials: Mapping[str, str]
    ) -> ProviderRequest:
        """Search stories whose url attribute matches the page's tokens."""
        page = one_url(cls.name, urls)
        params = (
            ("query", page),
            ("restrictSearchableAttributes", "url"),
            ("tags", "story"),
            ("hitsPerPage", str(cls.hits_per_page)),
        )
        return ProviderRequest(url=rebase(cls.endpoint, base_url), params=params)

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        """Sum `points` over the hits that are the same page as each URL."""
        data = json_body(cls.name, body)
        if not isinstance(data, dict) or not isinstance(data.get("hits"), list):
            raise ParseError(f"{cls.name}: body is not an object with a 'hits' list")
        hits: list[Any] = data["hits"]
        for hit in hits:
            if not isinstance(hit, dict):
                raise ParseError(f"{cls.name}: a hit is not an object")
            if not isinstance(hit.get("url"), str | None):
                raise ParseError(f"{cls.name}: a hit's url is not a string")
        counts: dict[str, int] = {}
        for url in urls:
            target = _page_key(url)
            total = 0
            for hit in hits:
                # Algolia matches tokens, so e.g. https://a.com/x also finds http://a.com/x/y.
                hit_url = hit.get("url")
                if hit_url is None or target is None or _page_key(hit_url) != target:
                    continue
                points = hit.get("points")
                if points is not None:
                    # A flagged story's score can sink below zero; it never takes shares away.
                    total += count_value(cls.name, points, "points", negative_is_zero=True)
            counts[url] = total
        return counts
