"""Buffer: how often a link was shared through Buffer, from the legacy v1 API."""

from __future__ import annotations

from typing import ClassVar

from providers._simple import OneUrlProvider, field_count, json_object
from providers.base import NetworkStatus


class Buffer(OneUrlProvider):
    """`{"shares": N}` from `links/shares.json`."""

    name: ClassVar[str] = "buffer"
    label: ClassVar[str] = "Buffer"
    color: ClassVar[str] = "#323b43"
    share_url: ClassVar[str | None] = "https://buffer.com/add?url={url}&text={title}"
    # v1 is legacy (Buffer takes no new developer apps) and answers without the token it documents.
    status: ClassVar[NetworkStatus] = NetworkStatus.UNDOCUMENTED
    docs_url: ClassVar[str] = "https://buffer.com/developers/api/links"
    endpoint: ClassVar[str] = "https://api.bufferapp.com/1/links/shares.json"

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """`shares`; an object without it is 0, as in every fetcher (Shariff `?? 0`)."""
        return field_count(cls.name, json_object(cls.name, body), "shares", missing_is_zero=True)
