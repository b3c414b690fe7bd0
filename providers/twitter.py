"""X (Twitter): posts linking a page per day from the paid v2 counts API, or legacy count.json."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from providers.base import (
    MAX_COUNT,
    NetworkStatus,
    Observation,
    ParseError,
    Problem,
    Provider,
    ProviderRequest,
    count_value,
    json_body,
    one_url,
    rebase,
)

LEGACY = "legacy"
V2 = "v2"
# An ISO 8601 UTC bucket boundary as X writes it: 2026-11-24T00:00:00.000Z.
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d{1,6})?Z")
# A usage cap (pay-per-use spend limit, monthly cap) lasts far longer than a rate-limit window.
USAGE_CAP_SECONDS = 86_400.0


class Twitter(Provider):
    """X API v2 `tweets/counts/recent` day buckets (7 days; the store sums every day it has seen).

    Mode "legacy" reads `{"count": N}` from `/1/urls/count.json` on a compatible mirror named by
    base_url; Twitter's own endpoint (cdn.api.twitter.com) was retired on 2015-11-20.
    """

    name: ClassVar[str] = "twitter"
    label: ClassVar[str] = "X (Twitter)"
    color: ClassVar[str] = "#1da1f2"
    share_url: ClassVar[str | None] = "https://x.com/intent/post?url={url}&text={title}"
    status: ClassVar[NetworkStatus] = NetworkStatus.PAID
    docs_url: ClassVar[str | None] = "https://docs.x.com/x-api/posts/counts/introduction"
    endpoint: ClassVar[str] = "https://api.x.com/2/tweets/counts/recent"
    legacy_endpoint: ClassVar[str] = "https://cdn.api.twitter.com/1/urls/count.json"
    # One query per request: OR-ing several url: operators would give one merged total.
    batch_size: ClassVar[int] = 1
    # counts/recent allows 300 requests per 15 minutes per app; each one is also billed.
    budget: ClassVar[tuple[int, float]] = (300, 900.0)
    credentials: ClassVar[tuple[str, ...]] = ("bearer_token",)
    # X rate limits run in 15-minute windows; a 429 normally says when its window resets.
    throttle_seconds: ClassVar[float] = 900.0

    @classmethod
    def required_settings(cls, config: Mapping[str, str]) -> tuple[str, ...]:
        """The legacy format needs no token; the v2 API needs the bearer token."""
        return () if config.get("mode") == LEGACY else cls.credentials

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """v2: `query=url:"<url>"`, day buckets, bearer token header; legacy: `?url=` only."""
        url = one_url(cls.name, urls)
        mode = config.get("mode") or V2
        if mode == LEGACY:
            return ProviderRequest(
                url=rebase(cls.legacy_endpoint, base_url), params=(("url", url),)
            )
        if mode != V2:
            raise ValueError(f"{cls.name}: unknown mode {mode!r}; use {V2!r} or {LEGACY!r}")
        token = config.get("bearer_token")
        if not token:
            raise ValueError(f"{cls.name} needs bearer_token (or mode {LEGACY!r})")
        # A quote would end the quoted term early; browsers send it as %22 anyway.
        params = (("query", 'url:"{}"'.format(url.replace('"', "%22"))), ("granularity", "day"))
        headers = {"Authorization": f"Bearer {token}"}
        return ProviderRequest(url=rebase(cls.endpoint, base_url), params=params, headers=headers)

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int | Observation]:
        """Tell the format by its shape: v2 has data/meta, legacy count.json has count."""
        one_url(cls.name, urls, ParseError)
        data = json_body(cls.name, body)
        if not isinstance(data, dict):
            raise ParseError(f"{cls.name}: body is not an object")
        if "data" in data or "meta" in data:
            return {urls[0]: cls._parse_v2(data)}
        if "count" in data:
            return {urls[0]: count_value(cls.name, data["count"], "count.json count")}
        if "errors" in data or "title" in data:
            raise ParseError(f"{cls.name}: error body: {_title(data) or 'errors'}")
        raise ParseError(f"{cls.name}: body has neither data/meta (v2) nor count (legacy)")

    @classmethod
    def _parse_v2(cls, data: dict[str, Any]) -> Observation:
        """Day buckets by their start date; meta alone means no posts in the window."""
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise ParseError(f"{cls.name}: meta is not an object")
        total = meta.get("total_tweet_count")
        if total is not None:
            total = count_value(cls.name, total, "meta.total_tweet_count")
        if "data" not in data:
            # X leaves `data` out, rather than sending [], when nothing matched (seen by minet).
            if total:
                raise ParseError(f"{cls.name}: meta counts {total} posts but there is no data")
            return Observation(0)
        buckets = data["data"]
        if not isinstance(buckets, list):
            raise ParseError(f"{cls.name}: data is not a list")
        days: dict[str, int] = {}
        for bucket in buckets:
            if not isinstance(bucket, dict):
                raise ParseError(f"{cls.name}: a bucket is not an object")
            day, whole = cls._start(bucket.get("start"))
            count = count_value(cls.name, bucket.get("tweet_count"), f"tweet_count of {day}")
            if day in days:
                raise ParseError(f"{cls.name}: two buckets start on {day}; not day granularity")
            if not whole:
                # The window's first bucket starts 7 days ago to the second and so holds only the
                # day's tail. The store replaces a day by its latest value, so keeping it would
                # shrink a day counted whole by an earlier fetch.
                continue
            days[day] = count
        count = sum(days.values())
        if count > MAX_COUNT:
            raise ParseError(f"{cls.name}: day buckets sum to {count}")
        return Observation(count, days=days)

    @classmethod
    def _start(cls, value: object) -> tuple[str, bool]:
        """The UTC date a bucket starts on, and whether it starts at midnight."""
        match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ParseError(f"{cls.name}: bucket start {str(value)[:40]!r} is not a UTC time")
        try:
            datetime.fromisoformat(f"{match[1]}T{match[2]}")
        except ValueError as exc:
            raise ParseError(f"{cls.name}: bucket start {value!r} is not a valid time") from exc
        return match[1], match[2] == "00:00:00"

    @classmethod
    def problem(cls, status: int, headers: Mapping[str, str], body: bytes) -> Problem | None:
        """429 until x-rate-limit-reset; 401/403 with X's error body: the token is refused."""
        error = _error_body(body)
        # The reset header covers the 15-minute window, not the monthly usage cap.
        if status == 429 and error is not None and "usage-capped" in str(error.get("type", "")):
            return Problem("throttled", "X usage cap exceeded (HTTP 429)", USAGE_CAP_SECONDS)
        if status in (401, 403) and error is not None:
            title = _title(error) or "no title"
            return Problem("rejected", f"X refused the bearer token (HTTP {status}: {title})")
        return super().problem(status, headers, body)


def _error_body(body: bytes) -> dict[str, Any] | None:
    """An X error object (problem fields or an `errors` list); None for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("title"), str) or isinstance(data.get("errors"), list):
        return data
    return None


def _title(error: Mapping[str, Any]) -> str:
    """The short, fixed title of an X error (never `detail`, which can quote account data)."""
    title = error.get("title")
    return title[:60] if isinstance(title, str) else ""
