"""Pinterest's count.json: always JSONP, with "-" where Pinterest has no count (0)."""

from __future__ import annotations

import json

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    url = request.param("url")
    count = count_of(url)
    data = {"url": url, "count": count if count else "-"}
    callback = request.param("callback", "receiveCount")
    return FakeResponse(200, f"{callback}({json.dumps(data)})".encode(), "application/javascript")


FAKE = NetworkFake("pinterest", (r"/v1/urls/count\.json",), answer)
