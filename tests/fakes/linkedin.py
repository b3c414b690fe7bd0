"""LinkedIn's countserv: JSON for format=json, IN.Tags.Share.handleCount(...) for JSONP."""

from __future__ import annotations

import json

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    url = request.param("url")
    count = count_of(url)
    data = {"count": count, "fCnt": str(count), "fCntPlusOne": str(count + 1), "url": url}
    if request.param("format", "json") == "json" and not request.param("callback"):
        return FakeResponse(200, json.dumps(data).encode())
    body = f"IN.Tags.Share.handleCount({json.dumps(data)});".encode()
    return FakeResponse(200, body, "application/javascript")


FAKE = NetworkFake("linkedin", (r"/countserv/count/share",), answer)
