"""Buffer's legacy v1 links/shares.json: {"shares": N}."""

from __future__ import annotations

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    return json_answer({"shares": count_of(request.param("url"))})


FAKE = NetworkFake("buffer", (r"/1/links/shares\.json",), answer)
