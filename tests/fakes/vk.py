"""VK's share.php?act=count: JavaScript `VK.Share.count(index, count);`."""

from __future__ import annotations

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    if request.param("act") != "count":
        # Without act=count share.php is the share page itself.
        return FakeResponse(200, b"<html>share</html>", "text/html")
    index = request.param("index", "0")
    body = f"VK.Share.count({index}, {count_of(request.param('url'))});".encode()
    return FakeResponse(200, body, "text/javascript; charset=windows-1251")


FAKE = NetworkFake("vk", (r"/share\.php",), answer)
