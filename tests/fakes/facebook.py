"""Graph API URL nodes: `?ids=` answered in the og_object{engagement} shape, keyed by each id."""

from __future__ import annotations

from typing import Any

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer

FIELDS = "og_object{engagement}"
MAX_IDS = 50
# Graph sends this header on app-token calls; a low usage must not read as a throttle.
USAGE = '{"call_count":1,"total_cputime":1,"total_time":1}'


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> FakeResponse:
    error = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    answer = json_answer({"error": error}, status)
    return FakeResponse(answer.status, answer.body, headers={"X-App-Usage": USAGE})


def node(url: str, count: int) -> dict[str, Any]:
    """A URL node; Graph has no og_object for a URL nobody has shared yet."""
    if count == 0:
        return {"id": url}
    engagement = {"count": count, "social_sentence": f"{count} people like this."}
    return {"og_object": {"engagement": engagement, "id": str(10**14 + count)}, "id": url}


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    token = request.param("access_token")
    if not token:
        return graph_error(400, 104, "An access token is required to request this resource.")
    app_id, _, secret = token.partition("|")
    if not app_id or not secret:
        return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
    if request.param("fields") != FIELDS:
        return graph_error(400, 100, "(#100) Tried accessing nonexisting field")
    ids = [i for i in request.param("ids").split(",") if i]
    if not ids:
        return graph_error(400, 100, "(#100) The parameter ids is required")
    if len(ids) > MAX_IDS:
        return graph_error(400, 100, f"(#100) Too many IDs. Maximum: {MAX_IDS}.")
    # The provider escapes a comma inside a URL as %2C; Graph takes both forms as one page.
    body = {i: node(i, count_of(i) or count_of(i.replace("%2C", ","))) for i in ids}
    answer = json_answer(body)
    return FakeResponse(answer.status, answer.body, headers={"X-App-Usage": USAGE})


FAKE = NetworkFake("facebook", (r"/v\d+\.\d+/?",), answer)
