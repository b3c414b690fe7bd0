"""Algolia's HN search format: the page's stories plus a decoy story for a different URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer

# Points of the decoy hit: large, so a parser that does not filter URLs is caught at once.
DECOY_POINTS = 999


def decoy_url(url: str) -> str:
    """A different page whose tokens Algolia would still match for `url` (the query differs)."""
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + "flares_decoy=1"
    return urlunsplit(parts._replace(query=query))


def hit(url: str, points: int, object_id: str) -> dict[str, Any]:
    return {
        "title": "A story",
        "url": url,
        "author": "pg",
        "points": points,
        "num_comments": 0,
        "objectID": object_id,
        "_tags": ["story"],
    }


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    query = request.param("query")
    count = count_of(query)
    hits: list[dict[str, Any]] = []
    # Split the points over two submissions so the parser's sum is exercised too.
    for n, points in enumerate((count - count // 2, count // 2)):
        if points > 0:
            hits.append(hit(query, points, object_id=str(n + 1)))
    hits.append(hit(decoy_url(query), DECOY_POINTS, object_id="9"))
    return json_answer(
        {"hits": hits, "page": 0, "nbHits": len(hits), "nbPages": 1, "hitsPerPage": 1000}
    )


FAKE = NetworkFake("hackernews", (r"/api/v1/search",), answer)
