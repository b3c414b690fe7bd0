"""Google+ provider: the legacy pos.plusones.get JSON-RPC call and its float count."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.googleplus import GooglePlus
from tests.provider_checks import (
    JSON_VALUES,
    PAGE,
    assert_counts_or_parse_error,
    json_answers,
    parse_error,
    parse_one,
)

# The reference sample (shariff-backend-java googleplus-result.json), verbatim: a lone answer.
SAMPLE = (
    b'{\n "id": "p",\n "result": {\n  "kind": "pos#plusones",\n  "id": "http://www.heise.de/",\n'
    b'  "isSetByViewer": false,\n  "metadata": {\n   "type": "URL",\n   "globalCounts": {\n'
    b'    "count": 273558.0\n   }\n  },\n'
    b'  "abtk": "AEIZW7T3zC3xzeK6FN6li4oO0fv7krkXxxPGbjzAKsS1wEpbi6Paw87ARLvoaj2gU0yfSOTNUfSzRxUp'
    b'xEIb3EkP7+BJsG1Rw=="\n }\n}'
)


def answer(count: Any, call_id: Any = "p") -> dict[str, Any]:
    result = {
        "kind": "pos#plusones",
        "id": PAGE,
        "isSetByViewer": False,
        "metadata": {"type": "URL", "globalCounts": {"count": count}},
    }
    return {"id": call_id, "result": result}


def batch(*answers: Any) -> bytes:
    return json.dumps(list(answers)).encode()


def test_build_request_is_a_json_rpc_batch_of_one() -> None:
    req = GooglePlus.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("POST", "https://clients6.google.com/rpc")
    assert list(req.params) == []
    assert req.form is None
    assert req.json == [
        {
            "method": "pos.plusones.get",
            "id": "p",
            "params": {
                "nolog": True,
                "id": PAGE,
                "source": "widget",
                "userId": "@viewer",
                "groupId": "@self",
            },
            "jsonrpc": "2.0",
            "key": "p",
            "apiVersion": "v1",
        }
    ]


def test_reference_sample() -> None:
    assert parse_one(GooglePlus, SAMPLE) == 273558


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (batch(answer(12.0)), 12),  # the batch form this provider sends
        (json.dumps(answer(12.0)).encode(), 12),  # a lone answer, as some fetchers got
        (batch(answer(0.0)), 0),
        (batch(answer(12)), 12),
        (batch(answer(11.6)), 12),  # rounded, as the fetchers did
        (batch(answer(12.4)), 12),
        (batch(answer(1e12)), 10**12),
        (batch({"id": "other", "result": {}}, answer(5.0)), 5),  # picked by id
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(GooglePlus, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b"[{}]",
        batch(answer(12.0, call_id="q")),  # not the answer to our call
        batch(answer(12.0, call_id=None)),
        json.dumps({"result": answer(12.0)["result"]}).encode(),  # no id
        # JSON-RPC errors.
        batch({"id": "p", "error": {"code": 400, "message": "Invalid Value"}}),
        json.dumps({"id": "p", "error": {"code": 403, "message": "Forbidden"}}).encode(),
        batch({"id": "p", "error": None}),
        batch({"id": "p", "result": None}),
        batch({"id": "p", "result": {"kind": "pos#plusones"}}),  # no metadata
        batch({"id": "p", "result": {"metadata": {"type": "URL"}}}),  # no globalCounts
        batch({"id": "p", "result": {"metadata": {"globalCounts": {}}}}),  # no count
        batch({"id": "p", "result": {"metadata": {"globalCounts": []}}}),
        batch(answer(None)),
        batch(answer("12")),
        batch(answer(True)),
        batch(answer(-1.0)),
        batch(answer(-0.6)),
        batch(answer(1e12 + 1)),
        batch(answer(1e300)),
        b'[{"id":"p","result":{"metadata":{"globalCounts":{"count":NaN}}}}]',
        b'[{"id":"p","result":{"metadata":{"globalCounts":{"count":Infinity}}}}]',
        batch(answer([12.0])),
        SAMPLE[:-3],  # truncated
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(GooglePlus, raw)


def test_json_rpc_error_is_named() -> None:
    raw = batch({"id": "p", "error": {"code": 400, "message": "Invalid Value"}})
    assert "JSON-RPC error" in parse_error(GooglePlus, raw)


_answers = st.builds(
    lambda counts, call_id: {
        "id": call_id,
        "result": {"metadata": {"globalCounts": counts}},
    },
    json_answers("count"),
    st.sampled_from(["p", "q"]) | JSON_VALUES,
)


@given(st.lists(_answers | JSON_VALUES, max_size=3), st.booleans())
def test_parse_arbitrary_json(answers: list[Any], alone: bool) -> None:
    data: Any = answers[0] if alone and answers else answers
    assert_counts_or_parse_error(GooglePlus, json.dumps(data).encode())
