"""Tumblr: the notes on posts of a page, from the share-button stats endpoint."""

from __future__ import annotations

from typing import ClassVar

from providers._simple import OneUrlProvider, excerpt, field_count, nested
from providers.base import NetworkStatus, ParseError, json_body


class Tumblr(OneUrlProvider):
    """`response.note_count` inside Tumblr's v2 envelope `{"meta": ..., "response": ...}`."""

    name: ClassVar[str] = "tumblr"
    label: ClassVar[str] = "Tumblr"
    color: ClassVar[str] = "#36465d"
    share_url: ClassVar[str | None] = (
        "https://www.tumblr.com/widgets/share/tool?canonicalUrl={url}&title={title}"
    )
    status: ClassVar[NetworkStatus] = NetworkStatus.UNDOCUMENTED
    # Not in Tumblr's API docs; the Shariff WordPress plugin still ships it (2025).
    docs_url: ClassVar[str] = (
        "https://github.com/3UU/wordpress-shariff-wrapper/blob/HEAD/"
        "trunk/services/shariff-tumblr.php"
    )
    endpoint: ClassVar[str] = "https://api.tumblr.com/v2/share/stats"

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """meta.status must say 200; a response without note_count is a page without notes."""
        data = json_body(cls.name, body)
        if not isinstance(data, dict):
            raise ParseError(f"{cls.name}: body is not a JSON object: {excerpt(data)}")
        # Errors come in the same envelope: {"meta": {"status": 404, ...}, "response": []}.
        meta = nested(cls.name, data, "meta")
        if meta.get("status") != 200:
            raise ParseError(f"{cls.name}: meta says {excerpt(meta)}")
        response = nested(cls.name, data, "response")
        return field_count(cls.name, response, "note_count", missing_is_zero=True)
