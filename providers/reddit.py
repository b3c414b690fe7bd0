"""Reddit: the summed score of the submissions of a page, through app-only OAuth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from providers.base import (
    NetworkStatus,
    Observation,
    ParseError,
    Provider,
    ProviderRequest,
    Token,
    count_value,
    json_body,
    one_url,
    rebase,
)


def _error_text(data: dict[str, Any]) -> str:
    """Reddit's own words from an error body, short; it never echoes credentials."""
    words = " ".join(str(data[key]) for key in ("error", "message") if key in data)
    return words[:80]


class Reddit(Provider):
    """Sum of `score` over the t3 submissions Reddit lists for the exact page URL.

    Reddit answers unauthenticated callers hardly at all since 2023, so a client-credentials
    token is fetched first; Reddit also wants a descriptive User-Agent, the `user_agent` setting.
    """

    name: ClassVar[str] = "reddit"
    label: ClassVar[str] = "Reddit"
    color: ClassVar[str] = "#ff4500"
    share_url: ClassVar[str | None] = "https://www.reddit.com/submit?url={url}&title={title}"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    docs_url: ClassVar[str | None] = "https://www.reddit.com/dev/api/#GET_api_info"
    endpoint: ClassVar[str] = "https://oauth.reddit.com/api/info"
    token_endpoint: ClassVar[str] = "https://www.reddit.com/api/v1/access_token"
    batch_size: ClassVar[int] = 1  # `url=` takes one URL; `id=` lists fullnames, not URLs
    credentials: ClassVar[tuple[str, ...]] = ("client_id", "client_secret")
    # OAuth clients get 100 queries per minute.
    budget: ClassVar[tuple[int, float]] = (100, 60.0)
    concurrency: ClassVar[int] = 4

    @classmethod
    def token_request(
        cls, base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest | None:
        """Client credentials by HTTP Basic; None when they are not set (build_request refuses)."""
        client_id, secret = config.get("client_id"), config.get("client_secret")
        if not client_id or not secret:
            return None
        return ProviderRequest(
            url=rebase(cls.token_endpoint, base_url),
            method="POST",
            form={"grant_type": "client_credentials"},
            basic_auth=(client_id, secret),
        )

    @classmethod
    def parse_token(cls, body: bytes) -> Token:
        """`access_token` and `expires_in` (seconds, 86400 today) from the token answer."""
        data = json_body(cls.name, body)
        if not isinstance(data, dict):
            raise ParseError(f"{cls.name}: token answer is not an object")
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token:
            # An OAuth error ({"error": "invalid_grant"}) can come with a 200.
            raise ParseError(f"{cls.name}: token answer has no access_token {_error_text(data)}")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise ParseError(f"{cls.name}: token answer has no numeric expires_in")
        if not 0 < expires_in <= 10 * 365 * 86_400:
            raise ParseError(f"{cls.name}: token expires_in {expires_in} is not a lifetime")
        return Token(token, float(expires_in))

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """`GET /api/info?url=` on the OAuth host with the bearer token."""
        page = one_url(cls.name, urls)
        return ProviderRequest(
            url=rebase(cls.endpoint, base_url),
            params=(("url", page),),
            headers=cls.bearer_header(config, scheme="bearer"),
        )

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, Observation]:
        """Sum `score` and `num_comments` over the Listing's t3 children; no children is 0."""
        one_url(cls.name, urls, ParseError)
        data = json_body(cls.name, body)
        if isinstance(data, dict) and "error" in data:
            raise ParseError(f"{cls.name}: error answer {_error_text(data)}")
        listing = data.get("data") if isinstance(data, dict) else None
        if not isinstance(listing, dict) or not isinstance(listing.get("children"), list):
            raise ParseError(f"{cls.name}: body is not a Listing with a children list")
        score = comments = 0
        for child in listing["children"]:
            if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
                raise ParseError(f"{cls.name}: a Listing child is not a thing with data")
            if child.get("kind") != "t3":
                continue  # only link submissions count; api/info by url lists nothing else
            link: dict[str, Any] = child["data"]
            # A downvoted submission has a negative balance; it never takes shares away.
            score += count_value(cls.name, link.get("score"), "score", negative_is_zero=True)
            comments += count_value(cls.name, link.get("num_comments"), "num_comments")
        total = count_value(cls.name, score, "summed score")
        parts = {"score": total, "comments": count_value(cls.name, comments, "summed comments")}
        return {urls[0]: Observation(total, parts=parts)}
