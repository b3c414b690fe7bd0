"""Tumblr's v2 share/stats: note_count inside the {"meta", "response"} envelope."""

from __future__ import annotations

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    url = request.param("url")
    return json_answer(
        {
            "meta": {"status": 200, "msg": "OK"},
            "response": {"url": url, "note_count": count_of(url)},
        }
    )


FAKE = NetworkFake("tumblr", (r"/v2/share/stats",), answer)
