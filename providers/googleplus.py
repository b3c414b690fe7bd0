"""Google+: the retired +1 count, in the legacy `pos.plusones.get` JSON-RPC format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, ClassVar

from providers._simple import OneUrlProvider, excerpt, field_count, nested
from providers.base import NetworkStatus, ParseError, ProviderRequest, json_body, one_url, rebase


class GooglePlus(OneUrlProvider):
    """POST one JSON-RPC call; count = `result.metadata.globalCounts.count`, a float."""

    name: ClassVar[str] = "googleplus"
    label: ClassVar[str] = "Google+"
    color: ClassVar[str] = "#db4437"
    share_url: ClassVar[str | None] = None
    # Counts were hidden mid-2017; consumer Google+ (and this endpoint's data) went 2019-04-02.
    status: ClassVar[NetworkStatus] = NetworkStatus.RETIRED
    status_since: ClassVar[date] = date(2019, 4, 2)
    docs_url: ClassVar[str] = "https://support.google.com/googlecurrents/answer/9195133"
    endpoint: ClassVar[str] = "https://clients6.google.com/rpc"
    enabled_by_default: ClassVar[bool] = False
    # The JSON-RPC id of our call; the answer carries it back.
    call_id: ClassVar[str] = "p"

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """A JSON-RPC batch of one call, as the +1 widget sent it."""
        call = {
            "method": "pos.plusones.get",
            "id": cls.call_id,
            "params": {
                "nolog": True,
                "id": one_url(cls.name, urls),
                "source": "widget",
                "userId": "@viewer",
                "groupId": "@self",
            },
            "jsonrpc": "2.0",
            "key": cls.call_id,
            "apiVersion": "v1",
        }
        return ProviderRequest(url=rebase(cls.endpoint, base_url), method="POST", json=[call])

    @classmethod
    def read_count(cls, body: bytes) -> int:
        """Our call's answer, in a batch array or alone (fetchers sent both); floats rounded."""
        data = json_body(cls.name, body)
        answers: list[Any] = data if isinstance(data, list) else [data]
        answer = next(
            (a for a in answers if isinstance(a, dict) and a.get("id") == cls.call_id), None
        )
        if answer is None:
            raise ParseError(f"{cls.name}: no answer to call {cls.call_id!r}: {excerpt(data)}")
        if "error" in answer:
            raise ParseError(f"{cls.name}: JSON-RPC error: {excerpt(answer['error'])}")
        counts = nested(cls.name, answer, "result", "metadata", "globalCounts")
        return field_count(cls.name, counts, "count", floats=True)
