"""Bluesky: posts linking a page, from app.bsky.feed.searchPosts in an app-password session."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from providers.base import (
    NetworkStatus,
    ParseError,
    Provider,
    ProviderRequest,
    Token,
    count_value,
    json_body,
    one_url,
    rebase,
)

# Lifetime assumed for an accessJwt whose `exp` cannot be read: short, so a wrong guess costs
# one early renewal rather than calls with an expired token (atproto access tokens live ~2 h).
FALLBACK_LIFETIME = 15 * 60.0
# Longest lifetime believed from a claim: a far-future `exp` must not pin one token forever.
MAX_LIFETIME = 24 * 3600.0


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (Unix seconds) of a JWT's payload; None when unreadable.

    The signature is not checked: the token only goes back to the server that issued it.
    """
    pieces = token.split(".")
    if len(pieces) != 3:
        return None
    payload = pieces[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


class Bluesky(Provider):
    """Number of posts that link the page, from a full-text search: not a share counter.

    Off by default: the operator discourages automated search (Bluesky staff: searchPosts is for
    "human-directed fulltext search" only, bluesky-social/atproto#3423); a poller is automated.
    """

    name: ClassVar[str] = "bluesky"
    label: ClassVar[str] = "Bluesky"
    color: ClassVar[str] = "#1185fe"
    share_url: ClassVar[str | None] = "https://bsky.app/intent/compose?text={title}%20{url}"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    docs_url: ClassVar[str | None] = "https://docs.bsky.app/docs/api/app-bsky-feed-search-posts"
    endpoint: ClassVar[str] = "https://bsky.social/xrpc/app.bsky.feed.searchPosts"
    session_endpoint: ClassVar[str] = "https://bsky.social/xrpc/com.atproto.server.createSession"
    batch_size: ClassVar[int] = 1
    credentials: ClassVar[tuple[str, ...]] = ("handle", "app_password")
    # Search is rate limited per account; a poller should stay far below it.
    budget: ClassVar[tuple[int, float]] = (100, 300.0)
    concurrency: ClassVar[int] = 1
    enabled_by_default: ClassVar[bool] = False
    # The lexicon's maximum page size; one page per URL, no cursor paging.
    page_size: ClassVar[int] = 100

    @classmethod
    def token_request(
        cls, base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest | None:
        """createSession with the handle and app password; None when they are not set."""
        handle, password = config.get("handle"), config.get("app_password")
        if not handle or not password:
            return None
        return ProviderRequest(
            url=rebase(cls.session_endpoint, base_url),
            method="POST",
            json={"identifier": handle, "password": password},
        )

    @classmethod
    def parse_token(cls, body: bytes) -> Token:
        """`accessJwt`, valid until its `exp` claim (at most a day), else FALLBACK_LIFETIME."""
        data = json_body(cls.name, body)
        token = data.get("accessJwt") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ParseError(f"{cls.name}: session answer has no accessJwt")
        exp = jwt_expiry(token)
        if exp is None:
            return Token(token, FALLBACK_LIFETIME)
        return Token(token, min(MAX_LIFETIME, max(0.0, exp - time.time())))

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """searchPosts with `q` (required by the lexicon) and the `url` link filter."""
        page = one_url(cls.name, urls)
        params = (("q", page), ("url", page), ("limit", str(cls.page_size)))
        return ProviderRequest(
            url=rebase(cls.endpoint, base_url),
            params=params,
            headers=cls.bearer_header(config),
        )

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        """`hitsTotal` when given, else the number of posts on the page."""
        one_url(cls.name, urls, ParseError)
        data = json_body(cls.name, body)
        if isinstance(data, dict) and "error" in data:
            raise ParseError(f"{cls.name}: error answer {str(data['error'])[:80]}")
        posts = data.get("posts") if isinstance(data, dict) else None
        if not isinstance(posts, list):
            raise ParseError(f"{cls.name}: body is not an object with a 'posts' list")
        if not all(isinstance(post, dict) for post in posts):
            raise ParseError(f"{cls.name}: a post is not an object")
        found = count_value(cls.name, len(posts), "posts")
        total: Any = data.get("hitsTotal")
        if total is None:
            # Without hitsTotal only this page is known: capped at page_size, as we do not page.
            return {urls[0]: found}
        # hitsTotal "may be rounded/truncated"; the posts in hand are a floor it cannot go under.
        return {urls[0]: max(found, count_value(cls.name, total, "hitsTotal"))}
