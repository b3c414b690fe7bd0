"""Hatena Bookmark: a JSON object for batches, a bare number (empty for 0) for one URL."""

from __future__ import annotations

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if request.path == "/count/entries":
        return json_answer({url: count_of(url) for url in request.all("url")})
    count = count_of(request.param("url"))
    # Hatena answers an empty body, not "0", for a page with no bookmarks.
    return FakeResponse(200, str(count).encode() if count else b"", "text/plain")


FAKE = NetworkFake("hatena", (r"/count/entries", r"/count/entry"), answer)
