"""Validation and canonical form of a page URL."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MAX_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that say how a visitor arrived, not which page: dropped, so that every link
# to a page meets in one record. More can be added in settings (FLARES_TRACKING_PARAMS).
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid"}
    | {"mc_cid", "mc_eid", "_ga", "_gl", "ref", "ref_src"}
)
TRACKING_PREFIXES = ("utm_",)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class InvalidURL(ValueError):
    """The URL cannot be tracked; the message says why."""


def _host(raw: str | None) -> str:
    if not raw:
        raise InvalidURL("the URL has no host")
    try:
        host = raw.encode("idna").decode("ascii") if not raw.isascii() else raw
    except UnicodeError as exc:
        raise InvalidURL(f"the host {raw!r} is not a valid domain name") from exc
    host = host.lower().rstrip(".")
    if not host or ".." in host:
        raise InvalidURL("the URL has no valid host")
    return host


def _query(raw: str, tracking: Collection[str]) -> str:
    """The query without tracking parameters, its pairs sorted by name (stable among repeats)
    and left as they were spelled: a network keys counts by the exact string."""
    pairs = []
    for pair in raw.split("&"):
        name = unquote_plus(pair.partition("=")[0]).lower()
        tracked = name in TRACKING_PARAMS or name in tracking or name.startswith(TRACKING_PREFIXES)
        if pair and not tracked:
            pairs.append((name, pair))
    return "&".join(pair for _, pair in sorted(pairs, key=lambda p: p[0]))


def canonical(url: str, tracking: Collection[str] = ()) -> str:
    """The canonical form of an absolute http(s) URL, without the tracking parameters (the
    built-in ones and `tracking`); raises InvalidURL with the reason."""
    if len(url) > MAX_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_LENGTH} characters")
    if _CONTROL.search(url):
        raise InvalidURL("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"the URL cannot be parsed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL("the URL must be absolute and start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise InvalidURL("the URL must not contain a user name or password")
    host = _host(parts.hostname)
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", _query(parts.query, tracking), ""))


def host_of(url: str) -> str:
    """The host of an already canonical URL."""
    return urlsplit(url).hostname or ""


def domain_allowed(url: str, allowed: list[str]) -> bool:
    """Whether the URL's host is one of the allowed domains or a subdomain of one."""
    host = host_of(url)
    return any(host == d or host.endswith("." + d) for d in allowed)
