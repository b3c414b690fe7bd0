"""Facebook: engagement of URL nodes from the Graph API, batched up to 50 URLs per request."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
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
    rebase,
)

# Graph versions expire about two years after release; shariff-backend-php pins v25.0 (2026).
DEFAULT_GRAPH_VERSION = "v25.0"
_GRAPH_VERSION = re.compile(r"v\d{1,3}\.\d{1,3}")
FIELDS = "og_object{engagement}"
# Graph error codes that mean "slow down": app (4), user (17), page (32), application limit
# (341) and custom (613) rate limits. https://developers.facebook.com/docs/graph-api/guides/error-handling
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613})
# Access token expired, revoked or invalid: retrying with the same settings cannot help.
REJECTED_CODES = frozenset({190})
# X-App-Usage values are percentages of the app's hourly budget; stop before reaching 100.
APP_USAGE_LIMIT = 90
# The `engagement` field's components, kept as parts under these names.
ENGAGEMENT_PARTS = {
    "reaction_count": "reactions",
    "comment_count": "comments",
    "share_count": "shares",
}


def _graph_id(url: str) -> str:
    """The URL as an id of `ids=`: Graph splits that list at commas, so a comma is escaped."""
    return url.replace(",", "%2C")


class Facebook(Provider):
    """Graph API URL nodes: `og_object.engagement.count`, 0 for a URL without an og_object."""

    name: ClassVar[str] = "facebook"
    label: ClassVar[str] = "Facebook"
    color: ClassVar[str] = "#1877f2"
    share_url: ClassVar[str | None] = "https://www.facebook.com/sharer/sharer.php?u={url}"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    docs_url: ClassVar[str | None] = "https://developers.facebook.com/docs/graph-api/reference/url/"
    endpoint: ClassVar[str] = f"https://graph.facebook.com/{DEFAULT_GRAPH_VERSION}/"
    batch_size: ClassVar[int] = 50
    # Graph counts every URL of a batch against the app's hourly budget (200 calls per daily
    # user): raise FLARES_PROVIDERS__FACEBOOK__BUDGET_REQUESTS to what your app has.
    budget: ClassVar[tuple[int, float]] = (600, 3600.0)
    cost_per_url: ClassVar[bool] = True
    credentials: ClassVar[tuple[str, ...]] = ("app_id", "app_secret")
    # App limits are computed over a rolling hour ("it can take up to an hour for your requests to
    # be accepted again"), and Meta says calls made while throttled still count (page level), so
    # retrying early only prolongs it: wait the whole window out.
    throttle_seconds: ClassVar[float] = 3600.0

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """GET /<version>/?ids=...&fields=og_object{engagement} with the app token in the query."""
        if not 1 <= len(urls) <= cls.batch_size:
            raise ValueError(f"{cls.name} takes 1 to {cls.batch_size} URLs, got {len(urls)}")
        version = config.get("graph_version") or DEFAULT_GRAPH_VERSION
        if not _GRAPH_VERSION.fullmatch(version):
            raise ValueError(f"{cls.name}: graph_version {version!r} is not like 'v25.0'")
        app_id, app_secret = config.get("app_id"), config.get("app_secret")
        if not app_id or not app_secret:
            raise ValueError(f"{cls.name} needs app_id and app_secret")
        params = (
            ("ids", ",".join(_graph_id(url) for url in urls)),
            ("fields", FIELDS),
            # An app access token; Graph takes it only as this query parameter (or a form field).
            ("access_token", f"{app_id}|{app_secret}"),
        )
        endpoint = f"https://graph.facebook.com/{version}/"
        return ProviderRequest(url=rebase(endpoint, base_url), params=params)

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, Observation]:
        """Read the object keyed by each requested URL; a URL Graph left out is missing, not 0."""
        data = json_body(cls.name, body)
        if not isinstance(data, dict):
            raise ParseError(f"{cls.name}: body is not an object")
        if "error" in data:
            raise ParseError(f"{cls.name}: Graph error {_describe_error(data['error'])}")
        counts: dict[str, Observation] = {}
        for url in urls:
            if _graph_id(url) in data:
                counts[url] = cls._node(url, data[_graph_id(url)])
        return counts

    @classmethod
    def _node(cls, url: str, node: Any) -> Observation:
        """One URL node: og_object{engagement} and/or the documented `engagement` field."""
        if not isinstance(node, dict):
            raise ParseError(f"{cls.name}: the node of {url!r} is not an object")
        parts: dict[str, int] = {}
        engagement = node.get("engagement")
        if engagement is not None:
            if not isinstance(engagement, dict):
                raise ParseError(f"{cls.name}: engagement of {url!r} is not an object")
            for field, part in ENGAGEMENT_PARTS.items():
                parts[part] = count_value(cls.name, engagement.get(field), f"{url!r} {field}")
            # Validated, but not a part: Meta retired the comments plugin on 2026-02-10.
            if "comment_plugin_count" in engagement:
                count_value(cls.name, engagement["comment_plugin_count"], f"{url!r} plugin count")
        if "og_object" not in node:
            if engagement is None:
                # Documented: no og_object until someone shares the URL (or it is scraped).
                return Observation(0)
            # Shariff's and Shared-Counts' definition of the `engagement` field's total.
            total = sum(parts.values())
            if total > MAX_COUNT:
                raise ParseError(f"{cls.name}: engagement of {url!r} sums to {total}")
            return Observation(total, parts=parts)
        og_object = node["og_object"]
        og_engagement = og_object.get("engagement") if isinstance(og_object, dict) else None
        if not isinstance(og_engagement, dict):
            raise ParseError(f"{cls.name}: og_object of {url!r} has no engagement object")
        count = count_value(cls.name, og_engagement.get("count"), f"{url!r} og_object count")
        return Observation(count, parts=parts)

    @classmethod
    def problem(cls, status: int, headers: Mapping[str, str], body: bytes) -> Problem | None:
        """Graph throttle/auth error codes, and an X-App-Usage above 90 % even on a 2xx."""
        code = _error_code(body)
        if code in THROTTLE_CODES:
            return Problem("throttled", f"Graph API rate limit (error code {code})")
        if code in REJECTED_CODES:
            return Problem("rejected", f"Graph API refused the app token (error code {code})")
        usage = _app_usage(headers.get("x-app-usage", ""))
        if usage is not None and usage[1] > APP_USAGE_LIMIT:
            message = f"X-App-Usage {usage[0]} at {usage[1]} % of the hourly budget"
            return Problem("throttled", message)
        return super().problem(status, headers, body)


def _describe_error(error: Any) -> str:
    """Code, subcode and type of a Graph error; never its message, which may quote the token."""
    if not isinstance(error, dict):
        return "(unreadable)"
    fields = [
        f"{key}={error[key]!r}"
        for key in ("code", "error_subcode", "type")
        if isinstance(error.get(key), int | str)
    ]
    return " ".join(fields)[:120] or "(no code)"


def _error_code(body: bytes) -> int | None:
    """The `error.code` of a Graph error body; None for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _app_usage(header: str) -> tuple[str, int | float] | None:
    """The highest percentage in an X-App-Usage header and its name; None when unreadable."""
    try:
        usage = json.loads(header)
    except (ValueError, RecursionError):
        return None
    if not isinstance(usage, dict):
        return None
    values = [
        (str(key), value)
        for key, value in usage.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return max(values, key=lambda item: item[1]) if values else None
