"""OK.ru's dk?st.cmd=extLike&tp=json: {"count": "N"}, "-1" for a page never shared."""

from __future__ import annotations

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if request.param("st.cmd") != "extLike" or request.param("tp") != "json":
        return FakeResponse(200, b"<html>ok.ru</html>", "text/html")
    count = count_of(request.param("ref"))
    return json_answer({"count": str(count) if count else "-1"})


FAKE = NetworkFake("ok", (r"/dk",), answer)
