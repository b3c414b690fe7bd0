"""Validation and canonical form of a page URL."""

from __future__ import annotations

import ipaddress
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
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")


class InvalidURL(ValueError):
    """The URL cannot be tracked; the message says why."""


# A DNS label: letters, digits and hyphens, no hyphen at either end, at most 63 characters.
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAX_HOST = 253


def _ip_host(raw: str) -> str:
    """An IP literal in its canonical spelling (IPv6 compressed)."""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError as exc:
        raise InvalidURL(f"{raw!r} is not a valid host: not an IP address") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise InvalidURL(f"{raw!r} is not a valid host: an IPv6 zone is local to one machine")
    return str(address)


def _host(raw: str | None) -> str:
    """A real host: an IP literal, or a name of valid DNS labels (IDN in punycode) with a dot
    in it, so that no single-label name (localhost, an intranet host) is tracked."""
    if not raw:
        raise InvalidURL("the URL has no host")
    # urlsplit took the brackets off an IPv6 literal; no name holds a colon.
    if ":" in raw:
        return _ip_host(raw)
    try:
        # IDNA 2003, as Python's codec has it: the spelling records were stored under.
        host = raw.encode("idna").decode("ascii") if not raw.isascii() else raw
    except UnicodeError as exc:
        raise InvalidURL(f"{raw!r} is not a valid host: not a valid domain name") from exc
    host = host.lower().removesuffix(".")
    labels = host.split(".")
    # No top-level domain is numeric: a name that ends in digits is an IPv4 address or nothing.
    if labels[-1].isdigit():
        return _ip_host(host)
    if len(host) > MAX_HOST:
        raise InvalidURL(f"the host is not a valid host name: longer than {MAX_HOST} characters")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if bad is not None:
        raise InvalidURL(
            f"{host!r} is not a valid host name: each label holds 1 to 63 letters, digits or "
            f"hyphens, no hyphen at either end ({f'{bad!r} does not' if bad else 'one is empty'})"
        )
    if len(labels) < 2:
        raise InvalidURL(
            f"{host!r} is not a valid host: a public name has a dot in it (localhost and other "
            "single-label names are not tracked)"
        )
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


# The ways one page is spelled that networks keying counts by the exact string tell apart.
VARIANT_KINDS = ("scheme", "www", "slash")
_OTHER_SCHEME = {"http": "https", "https": "http"}


def _www_partner(host: str) -> str | None:
    """The host with `www.` added or removed; None where that names no other site: an IP
    address, a bare name, a name too long for `www.`, or www.www.example.com (toggling its
    `www.` twice would not undo)."""
    bare = host.removeprefix("www.")
    # A numeric last label is an IPv4 address (no top-level domain is numeric); ':' is IPv6.
    if ":" in bare or bare.startswith("www.") or "." not in bare:
        return None
    # The www. spelling is the longer one: where it would be too long, neither has the other.
    if bare.rsplit(".", 1)[1].isdigit() or len("www." + bare) > MAX_HOST:
        return None
    return bare if bare != host else "www." + host


def _flip(url: str, kind: str) -> str | None:
    """The URL with one kind of variant toggled; None where the kind does not apply to it.

    Whether a kind applies never changes by toggling any kind, so every variant of a URL has
    the same variants."""
    parts = urlsplit(url)
    if kind == "scheme":
        # With an explicit port the other scheme would be another server, not another spelling.
        if parts.port is not None:
            return None
        return urlunsplit(parts._replace(scheme=_OTHER_SCHEME[parts.scheme]))
    if kind == "www":
        partner = _www_partner(parts.hostname or "")
        if partner is None:
            return None
        netloc = partner if parts.port is None else f"{partner}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    path = parts.path
    # The root has no spelling without its slash, and /a// toggled twice would not come back.
    if path == "/" or path.endswith("//"):
        return None
    return urlunsplit(parts._replace(path=path[:-1] if path.endswith("/") else path + "/"))


def variants(url: str, kinds: Collection[str]) -> list[str]:
    """The spellings of a canonical URL that a network may count apart, `url` first: every
    combination of the `kinds` (of VARIANT_KINDS) that apply to it, each itself canonical."""
    found = [url]
    for kind in VARIANT_KINDS:
        if kind in kinds:
            found += [v for v in (_flip(u, kind) for u in found) if v is not None]
    return list(dict.fromkeys(found))
