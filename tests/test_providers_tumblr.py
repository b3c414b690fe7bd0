"""Tumblr provider: response.note_count in the v2 envelope, meta.status checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.tumblr import Tumblr
from tests.provider_checks import (
    PAGE,
    assert_counts_or_parse_error,
    json_answers,
    parse_error,
    parse_one,
)

OK_META = {"status": 200, "msg": "OK"}


def envelope(response: Any, meta: Any = OK_META, **extra: Any) -> bytes:
    return json.dumps({"meta": meta, "response": response, **extra}).encode()


def test_build_request() -> None:
    req = Tumblr.build_request([PAGE], None, {})
    assert (req.method, req.url) == ("GET", "https://api.tumblr.com/v2/share/stats")
    assert list(req.params) == [("url", PAGE)]


def test_reference_sample() -> None:
    raw = b'{"meta":{"status":200,"msg":"OK"},"response":{"url":"https://a/","note_count":12}}'
    assert parse_one(Tumblr, raw) == 12


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (envelope({"url": PAGE, "note_count": 0}), 0),
        (envelope({"url": PAGE, "note_count": 7}), 7),
        (envelope({"url": PAGE}), 0),  # no note_count: no notes (reference quirk 5)
        (envelope({}), 0),
        (envelope({"note_count": 10**12}), 10**12),
        (envelope({"note_count": 3}, meta={"status": 200}), 3),
    ],
)
def test_counts(raw: bytes, expected: int) -> None:
    assert parse_one(Tumblr, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        envelope({"note_count": 3}, meta=None),
        json.dumps({"response": {"note_count": 3}}).encode(),  # no meta
        json.dumps({"meta": OK_META}).encode(),  # no response
        envelope(None),
        envelope([]),
        envelope("12"),
        envelope({"note_count": 3}, meta="OK"),
        envelope({"note_count": 3}, meta={"msg": "OK"}),
        envelope({"note_count": 3}, meta={"status": "200", "msg": "OK"}),
        envelope({"note_count": 3}, meta={"status": 201, "msg": "Created"}),
        # Tumblr's error envelope.
        envelope([], meta={"status": 404, "msg": "Not Found"}, errors=[{"title": "Not Found"}]),
        envelope([], meta={"status": 429, "msg": "Limit Exceeded"}),
        envelope({"note_count": None}),
        envelope({"note_count": "12"}),
        envelope({"note_count": 12.0}),
        envelope({"note_count": True}),
        envelope({"note_count": -1}),
        envelope({"note_count": 10**12 + 1}),
        envelope({"note_count": [12]}),
        envelope({"note_count": 3, "error": "oops"}),
        b'{"meta":{"status":200,"msg":"OK"},"response":{"note_count":12}',  # truncated
        b'callback({"meta":{"status":200},"response":{"note_count":12}})',  # JSONP form
    ],
)
def test_malformed_bodies_raise_parse_error(raw: bytes) -> None:
    parse_error(Tumblr, raw)


def test_error_envelope_message_names_status() -> None:
    message = parse_error(Tumblr, envelope([], meta={"status": 404, "msg": "Not Found"}))
    assert "404" in message and "Not Found" in message


_metas = st.sampled_from([OK_META, {"status": 404, "msg": "Not Found"}]) | json_answers("status")


@given(_metas, json_answers("note_count", "url"))
def test_parse_arbitrary_json(meta: object, response: object) -> None:
    assert_counts_or_parse_error(Tumblr, envelope(response, meta=meta))
