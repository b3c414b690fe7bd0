"""Google+'s JSON-RPC endpoint: pos.plusones.get answered with a float globalCounts.count."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import CountOf, FakeRequest, FakeResponse, NetworkFake, json_answer


def reply(call: Any, count_of: CountOf) -> dict[str, Any]:
    """The answer to one JSON-RPC call, with the call's id."""
    if not isinstance(call, dict) or call.get("method") != "pos.plusones.get":
        error = {"code": -32601, "message": "Method not found"}
        return {"id": call.get("id") if isinstance(call, dict) else None, "error": error}
    url = str(call.get("params", {}).get("id", ""))
    result = {
        "kind": "pos#plusones",
        "id": url,
        "isSetByViewer": False,
        "metadata": {"type": "URL", "globalCounts": {"count": float(count_of(url))}},
    }
    return {"id": call["id"], "result": result}


def answer(request: FakeRequest, count_of: CountOf) -> FakeResponse:
    try:
        calls = json.loads(request.body)
    except ValueError:
        return json_answer({"error": {"code": -32700, "message": "Parse error"}}, status=400)
    # A batch (array) is answered with an array, a lone call with a lone answer.
    if isinstance(calls, list):
        return json_answer([reply(call, count_of) for call in calls])
    return json_answer(reply(calls, count_of))


FAKE = NetworkFake("googleplus", (r"/rpc",), answer)
