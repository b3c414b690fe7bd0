"""Shared pure helpers of the providers that ask about one page per request."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from providers.base import (
    ParseError,
    Provider,
    ProviderRequest,
    count_value,
    json_body,
    one_url,
    rebase,
    unwrap_call,
)

PAGE = "{page}"
"""Marks the query parameter that carries the page URL in a provider's `query`."""

# Keys that only an error answer has; a body with one of them is never read as a count, so an
# error cannot turn into a 0 where a missing count field means 0.
ERROR_KEYS = ("error", "errors", "error_code", "error_msg", "message")
# A count string longer than this is no count; int() would refuse past 4,300 digits anyway.
MAX_DIGITS = 40


def excerpt(value: object) -> str:
    """A short repr of part of an answer for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_object(provider: str, value: object, what: str) -> dict[str, Any]:
    """`value` as a JSON object that is not an error answer; ParseError otherwise."""
    if value is None:
        raise ParseError(f"{provider}: the answer has no {what}")
    if not isinstance(value, dict):
        raise ParseError(f"{provider}: {what} is not a JSON object: {excerpt(value)}")
    if any(key in value for key in ERROR_KEYS) or value.get("success") is False:
        raise ParseError(f"{provider}: {what} is an error: {excerpt(value)}")
    return value


def json_object(provider: str, body: bytes) -> dict[str, Any]:
    """A body that is one JSON object and not an error answer."""
    return as_object(provider, json_body(provider, body), "body")


def nested(provider: str, data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The object at `data[k1][k2]...`, each level a JSON object; ParseError naming the path."""
    node: Mapping[str, Any] = data
    for depth, key in enumerate(keys, start=1):
        node = as_object(provider, node.get(key), ".".join(keys[:depth]))
    return dict(node)


def call_arguments(provider: str, body: bytes, function: str) -> str:
    """The argument text of a body that is exactly `function(...)`, with an optional `;`.

    Stricter than `unwrap_call`: text before the call or after it is a broken answer.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text.startswith(function + "(") or text[text.rfind(")") + 1 :].strip() not in ("", ";"):
        raise ParseError(f"{provider}: body is not a {function}(...) call: {text[:80]!r}")
    return unwrap_call(provider, body, function)


def jsonp_object(provider: str, body: bytes, function: str) -> dict[str, Any]:
    """The JSON object passed to `function(...)` in a JSONP body; never evaluated."""
    return json_object(provider, call_arguments(provider, body, function).encode())


def digits_count(provider: str, text: str, what: str) -> int:
    """A count written as decimal digits ("12", " 12 "); ParseError for anything else."""
    if len(text) > MAX_DIGITS:
        raise ParseError(f"{provider}: {what} {text[:MAX_DIGITS]!r}... is too long for a count")
    return count_value(provider, text, what, strings=True)


def field_count(
    provider: str,
    data: Mapping[str, Any],
    key: str,
    *,
    strings: bool = False,
    floats: bool = False,
    zero: tuple[object, ...] = (),
    missing_is_zero: bool = False,
) -> int:
    """The count in `data[key]`.

    `zero` lists a network's sentinels for "none" ("-", -1), matched with their type, and
    `missing_is_zero` is for networks that leave the field out for a page nobody shared.
    """
    if key not in data:
        if missing_is_zero:
            return 0
        raise ParseError(f"{provider}: the answer has no {key!r}")
    value = data[key]
    if any(type(value) is type(sentinel) and value == sentinel for sentinel in zero):
        return 0
    if strings and isinstance(value, str):
        return digits_count(provider, value, key)
    return count_value(provider, value, key, floats=floats)


class OneUrlProvider(Provider):
    """A network asked about one page per GET: fixed query parameters plus the page URL."""

    batch_size: ClassVar[int] = 1
    # The query in the network's order; the value PAGE stands for the page URL.
    query: ClassVar[tuple[tuple[str, str], ...]] = (("url", PAGE),)

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        """GET the endpoint (rebased) with the query, the page URL in its place."""
        page = one_url(cls.name, urls)
        params = tuple((key, page if value == PAGE else value) for key, value in cls.query)
        return ProviderRequest(url=rebase(cls.endpoint, base_url), params=params)

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        """The count of the batch's one URL."""
        return {one_url(cls.name, urls): cls.read_count(body)}

    @classmethod
    @abc.abstractmethod
    def read_count(cls, body: bytes) -> int:
        """The page's count in a 2xx body; ParseError for anything else."""
