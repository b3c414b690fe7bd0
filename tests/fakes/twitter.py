"""X API v2 recent counts (day buckets of the last 7 days) and the legacy count.json format."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer

# The last days (today included, UTC) over which the count set on the fake is spread.
SPREAD_DAYS = 3
_QUERY = re.compile(r'url:"([^"]+)"')


def x_error(status: int, title: str, detail: str, kind: str = "about:blank") -> FakeResponse:
    """X's v2 problem format."""
    return json_answer({"title": title, "detail": detail, "type": kind, "status": status}, status)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def spread(count: int, days: int = SPREAD_DAYS) -> list[int]:
    """`count` split over `days` days, oldest first, deterministically; sums to `count`."""
    share = count // days
    return [share] * (days - 1) + [count - share * (days - 1)]


def buckets(count: int, now: datetime) -> list[dict[str, Any]]:
    """X's day buckets: the window's partial first day, six whole days, then today so far."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window_start = (now - timedelta(days=7)).replace(microsecond=0)
    counts = dict(
        zip(
            (today - timedelta(days=n) for n in range(SPREAD_DAYS - 1, -1, -1)),
            spread(count),
            strict=True,
        )
    )
    edges = [window_start] + [today - timedelta(days=n) for n in range(6, -1, -1)] + [now]
    return [
        {"end": _stamp(end), "start": _stamp(start), "tweet_count": counts.get(start, 0)}
        for start, end in pairwise(edges)
    ]


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if request.path == "/1/urls/count.json":
        url = request.param("url")
        return json_answer({"count": count_of(url), "url": url})
    auth = request.headers.get("authorization", "")
    if not re.fullmatch(r"Bearer \S+", auth):
        return x_error(401, "Unauthorized", "Unauthorized")
    match = _QUERY.fullmatch(request.param("query"))
    if match is None or request.param("granularity") != "day":
        detail = "One or more parameters to your request was invalid."
        kind = "https://api.twitter.com/2/problems/invalid-request"
        return x_error(400, "Invalid Request", detail, kind)
    count = count_of(match[1])
    if count == 0:
        # X leaves `data` out when nothing matched.
        return json_answer({"meta": {"total_tweet_count": 0}})
    data = buckets(count, datetime.now(UTC))
    return json_answer({"data": data, "meta": {"total_tweet_count": count}})


FAKE = NetworkFake("twitter", (r"/2/tweets/counts/recent", r"/1/urls/count.json"), answer)
