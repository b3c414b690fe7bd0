"""Fuzzing every provider's pure functions with answers that are almost right: each network's real
format (as its fake in tests/fakes writes it) with values swapped for JSON of the wrong type,
absurd numbers, nesting near the recursion limit, or bytes flipped. parse gives counts or raises
the ParseError, problem gives a Problem or None, parse_token a token or the ParseError: never any
other exception. (Wholly random bytes are fuzzed in tests/test_providers_common.py.)"""

from __future__ import annotations

import base64
import json
import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.base import MAX_WAIT, Provider, ProviderRequest
from providers.registry import discover
from tests.fakes import FakeRequest
from tests.fakes import discover as discover_fakes
from tests.provider_checks import (
    JSON_VALUES,
    LIMIT_HEADERS,
    assert_counts_or_parse_error,
    batch_of,
    spec_of,
    token_or_parse_error,
)

PROVIDERS = discover()
FAKES = discover_fakes()
COUNT = 3
# The limit the parsers run under in the service; Hypothesis raises it while a test runs.
LIMIT = sys.getrecursionlimit()
# Stands for a nesting near the recursion limit, which json.dumps cannot write.
DEEP = "\x00deep\x00"
# Values a field should never hold, as JSON can carry them: every type, numbers past any count
# (and past float range), non-finite floats, digit strings too long for int(), deep nesting.
ODD: st.SearchStrategy[Any] = (
    JSON_VALUES
    | st.sampled_from(
        [
            DEEP,
            10**30,
            -(10**30),
            -1,
            2**63,
            1e308,
            -1e308,
            math.inf,
            -math.inf,
            math.nan,
            -0.0,
            0.5,
            "9" * 5000,
            "-1",
            "\u0661\u0662",
            "",
            True,
            None,
            [],
            {},
        ]
    )
    | st.integers()
    | st.floats()
)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def dumped(value: Any, depth: int) -> bytes:
    """JSON text of `value`, with DEEP written out as lists nested `depth` deep."""
    return json.dumps(value).replace(json.dumps(DEEP), deep(depth)).encode()


def fake_request(request: ProviderRequest) -> FakeRequest:
    """What the fake server would receive for the request the executor sends."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    body = b""
    if request.form is not None:
        body = urlencode(request.form).encode()
    elif request.json is not None:
        body = json.dumps(request.json).encode()
    if request.basic_auth is not None:
        pair = ":".join(request.basic_auth).encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
    path = urlsplit(request.url).path
    return FakeRequest(request.method, path, list(request.params), headers, body)


@dataclass(frozen=True)
class Sample:
    """One real answer of a network: what parse (or parse_token) reads, and for which URLs."""

    urls: tuple[str, ...]
    body: bytes


def answer(provider: type[Provider], request: ProviderRequest) -> bytes:
    response = FAKES[provider.name].answer(fake_request(request), lambda _: COUNT)
    assert response.status == 200, response.body
    return response.body


def token_sample(provider: type[Provider]) -> Sample | None:
    request = provider.token_request(None, spec_of(provider).request_config())
    return None if request is None else Sample((), answer(provider, request))


def count_samples(provider: type[Provider]) -> Iterator[Sample]:
    """The fake's answers to one URL and to a batch, in every mode, after the auth step."""
    spec = spec_of(provider)
    for mode in ({}, *spec.modes):
        config = {**spec.request_config(), **mode}
        token = token_sample(provider)
        if token is not None:
            config["token"] = provider.parse_token(token.body).value
        for urls in dict.fromkeys([(batch_of(provider)[0],), tuple(batch_of(provider))]):
            request = provider.build_request(urls, None, config)
            yield Sample(urls, answer(provider, request))


SAMPLED = [provider for name, provider in PROVIDERS.items() if name in FAKES]
SAMPLES = [(p, sample) for p in SAMPLED for sample in count_samples(p)]
TOKEN_SAMPLES = [(p, s) for p in SAMPLED if (s := token_sample(p)) is not None]
ids = [f"{p.name}-{n}" for n, (p, _) in enumerate(SAMPLES)]
fuzzed = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Shape:
    """A sample's JSON, and the JavaScript call around it, if any (JSONP, VK's arguments)."""

    data: Any
    before: bytes = b""
    after: bytes = b""

    def written(self, data: Any, depth: int = 1) -> bytes:
        """`data` in place of the sample's JSON; a list in a call is its arguments."""
        text = dumped(data, depth)
        if not self.before:
            return text
        return self.before + (text[1:-1] if isinstance(data, list) else text) + self.after


def shape(body: bytes) -> Shape:
    try:
        return Shape(json.loads(body))
    except ValueError:
        text = body.decode()
        start, end = text.index("("), text.rindex(")")
        arguments = json.loads("[" + text[start + 1 : end] + "]")
        return Shape(arguments, text[: start + 1].encode(), text[end:].encode())


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value: itself, and each member and item, recursively."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(item, rest, new) if i == head else item for i, item in enumerate(value)]


def removed(value: Any, path: tuple[Any, ...]) -> Any:
    """`value` without the member or item at `path` (the root cannot go)."""
    if len(path) == 1:
        if isinstance(value, dict):
            return {key: item for key, item in value.items() if key != path[0]}
        return [item for i, item in enumerate(value) if i != path[0]]
    head = path[0]
    if isinstance(value, dict):
        return {**value, head: removed(value[head], path[1:])}
    return [removed(item, path[1:]) if i == head else item for i, item in enumerate(value)]


@st.composite
def mutated(draw: st.DrawFn, sample: Sample) -> bytes:
    """The sample's JSON with one to three members replaced by odd values or left out."""
    found = shape(sample.body)
    data = found.data
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(data)))
        if path and draw(st.booleans()):
            data = removed(data, path)
        else:
            data = replaced(data, path, draw(ODD))
    depth = draw(st.integers(LIMIT - 100, LIMIT + 10))
    return found.written(data, depth)


@st.composite
def flipped(draw: st.DrawFn, body: bytes) -> bytes:
    """The sample with a few bytes changed, dropped or added, or cut short."""
    raw = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["set", "drop", "add", "cut"]))
        if edit == "set" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif edit == "drop":
            del raw[at : at + draw(st.integers(1, 8))]
        elif edit == "add":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at:]
    return bytes(raw)


def almost_right(sample: Sample) -> st.SearchStrategy[bytes]:
    """The sample with odd values in it, or with bytes flipped."""
    return mutated(sample) | flipped(sample.body)


def assert_problem_or_none(
    provider: type[Provider], status: int, headers: Mapping[str, str], body: bytes
) -> None:
    problem = provider.problem(status, headers, body)
    if problem is None:
        return
    assert problem.kind in ("throttled", "rejected")
    assert isinstance(problem.message, str)
    wait = problem.retry_after
    assert wait is None or (isinstance(wait, float) and 0 <= wait <= MAX_WAIT)


def keys_of(value: Any) -> set[str]:
    found: set[str] = set()
    for path in paths(value):
        found.update(key for key in path if isinstance(key, str))
    return found


sampled = pytest.mark.parametrize(("provider", "sample"), SAMPLES, ids=ids)
every_provider = pytest.mark.parametrize("provider", list(PROVIDERS.values()), ids=list(PROVIDERS))


def test_every_network_with_a_fake_is_sampled() -> None:
    assert {p.name for p in SAMPLED} == set(FAKES)
    for provider, sample in SAMPLES:
        assert_counts_or_parse_error(provider, sample.body, sample.urls)
        assert COUNT in {
            getattr(value, "count", value)
            for value in provider.parse(sample.urls, sample.body).values()
        }


@sampled
@fuzzed
@given(data=st.data())
def test_real_answers_mutated(
    provider: type[Provider], sample: Sample, data: st.DataObject
) -> None:
    assert_counts_or_parse_error(provider, data.draw(almost_right(sample)), sample.urls)


@every_provider
@fuzzed
@given(data=st.data())
def test_json_with_the_formats_keys_and_wrong_types(
    provider: type[Provider], data: st.DataObject
) -> None:
    """Objects built from the keys the real format uses, holding values of any type."""
    names = sorted(
        {key for p, s in SAMPLES if p is provider for key in keys_of(shape(s.body).data)}
    ) or ["count"]
    keys = st.sampled_from(names) | st.text(max_size=6)
    document = data.draw(
        st.recursive(
            ODD,
            lambda inner: st.dictionaries(keys, inner, max_size=5) | st.lists(inner, max_size=3),
            max_leaves=12,
        )
    )
    urls = batch_of(provider)
    body = dumped(document, data.draw(st.integers(1, LIMIT + 10)))
    assert_counts_or_parse_error(provider, body, urls)


@sampled
def test_nesting_near_the_recursion_limit_anywhere(
    provider: type[Provider], sample: Sample
) -> None:
    """Every member of the real answer in turn, nested at each depth around the limit: where
    json.loads still succeeds, whatever reads the value next must not run out of stack."""
    found = shape(sample.body)
    for path in paths(found.data):
        nested = replaced(found.data, path, DEEP)
        for depth in range(LIMIT - 60, LIMIT + 2):
            body = found.written(nested, depth)
            assert_counts_or_parse_error(provider, body, sample.urls)


ERROR_KEYS = ("error", "errors", "title", "type", "detail", "code", "error_subcode", "message")


@every_provider
@fuzzed
@given(
    status=st.sampled_from([200, 400, 401, 403, 429, 500]) | st.integers(100, 599),
    headers=st.dictionaries(
        st.sampled_from(LIMIT_HEADERS) | st.text(max_size=12),
        st.from_regex(r"\A[ +-]?[0-9]{0,400}(\.[0-9]{0,3})?(e[+-]?[0-9]{1,4})?\Z")
        | st.sampled_from(["nan", "inf", "-inf", "1e999", '{"call_count": 1e999}'])
        | st.text(max_size=40),
    ),
    error=st.dictionaries(st.sampled_from(ERROR_KEYS), ODD, max_size=4),
    depth=st.integers(1, LIMIT + 100),
)
def test_problem_reads_any_answer(
    provider: type[Provider], status: int, headers: dict[str, str], error: Any, depth: int
) -> None:
    assert_problem_or_none(provider, status, headers, dumped({"error": error, **error}, depth))


@pytest.mark.parametrize(
    ("provider", "sample"), TOKEN_SAMPLES, ids=[p.name for p, _ in TOKEN_SAMPLES]
)
@fuzzed
@given(data=st.data())
def test_token_answers_with_odd_values(
    provider: type[Provider], sample: Sample, data: st.DataObject
) -> None:
    token = token_or_parse_error(provider, data.draw(almost_right(sample)))
    assert token is None or (math.isfinite(token.expires_in) and token.expires_in >= 0)
