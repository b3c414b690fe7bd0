"""Every operation of /openapi.json, fuzzed by schemathesis with the admin key and without:
no 5xx, and every answer matches what the schema declares for it (status, media type, body)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, HookContext
from schemathesis.core.result import Ok

from aggregator.api.app import create_app
from aggregator.config import Settings
from aggregator.store import Store
from tests.conftest import SettingsFactory
from tests.test_api import ApiFactory, assert_error, make_api

__all__ = ["make_api"]

ADMIN_KEY = "schema-admin-key"
ALLOWED = "example.com"
PAGE = "https://blog.example.com/post"
# Random strings are almost never pages, networks or domains flares knows: in the fuzzing phase
# the hooks below mostly swap in these real ones, so the answers with counts are checked too.
REAL = {"url": PAGE, "urls": PAGE, "domain": ALLOWED, "network": "hackernews", "name": "hatena"}
# At most this long, a generated string was valid where it stood (every such parameter allows
# 64 characters or more), so the swap never turns an invalid request into a valid one.
SWAPPABLE = 64
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def documented_operations() -> dict[str, Any]:
    """The schema does not depend on settings or Redis: an app that never starts gives it."""
    return create_app(Settings(), "redis://unused", scheduler=False).openapi()


def never_reject(document: dict[str, Any]) -> list[str]:
    """Operations that declare no 4xx: badges, which draw what is wrong instead."""
    return [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if not any(code.startswith("4") for code in operation["responses"])
    ]


DOCUMENT = documented_operations()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": 8,
            "generation": {"max-examples": 12, "deterministic": True},
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "checks": {
                # A string in the schema is not yet a URL flares accepts (http(s), a real host):
                # a schema-valid request may still get its 400, which the schema declares.
                "positive_data_acceptance": {"enabled": False},
            },
            "operations": [
                {
                    "include-name": never_reject(DOCUMENT),
                    "checks": {"negative_data_rejection": {"enabled": False}},
                }
            ],
        }
    ),
)


def swapped(value: Any) -> Any:
    """`value` with every short string under a REAL key replaced by the real one."""
    if isinstance(value, list):
        return [swapped(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in REAL and isinstance(item, str) and len(item) <= SWAPPABLE:
            out[key] = REAL[key]
        elif key in REAL and isinstance(item, list):
            out[key] = [
                REAL[key] if isinstance(one, str) and len(one) <= SWAPPABLE else one for one in item
            ]
        else:
            out[key] = swapped(item)
    return out


def maybe_real(value: Any) -> st.SearchStrategy[Any]:
    # Real first, which Hypothesis favours: a share link needs both its path and query swapped.
    # The coverage phase, which runs no hooks, sends the generated values as they are.
    return st.sampled_from([swapped(value), value])


@schema.hook
def flatmap_query(_: HookContext, query: Any) -> st.SearchStrategy[Any]:
    return maybe_real(query)


@schema.hook
def flatmap_path_parameters(_: HookContext, path: Any) -> st.SearchStrategy[Any]:
    return maybe_real(path)


@schema.hook
def flatmap_body(_: HookContext, body: Any) -> st.SearchStrategy[Any]:
    return maybe_real(body)


@pytest.fixture
async def app(make_settings: SettingsFactory, redis_url: str, store: Store) -> FastAPI:
    """The app on the test Redis with one page counted and a live scheduler; schemathesis runs
    the app's lifespan on an event loop of its own and ends it with the test."""
    now = time.time()
    await store.track(PAGE, now)
    await store.merge_counts("hackernews", {PAGE: 12}, now)
    await store.beat(ttl=600)
    return create_app(
        make_settings(admin_key=ADMIN_KEY, allowed_domains=[ALLOWED]), redis_url, scheduler=False
    )


class Calls:
    """How often the fuzzer called the operation under test."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def calls() -> Iterator[Calls]:
    made = Calls()
    yield made
    assert made.count > 0, "the fuzzer never called this operation"


# One app per operation serves all its examples, on purpose: its state builds up between them.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@schema.parametrize()
def test_every_operation_answers_as_declared(case: Case[Any], app: FastAPI, calls: Calls) -> None:
    calls.count += 1
    case.call_and_validate(app=app)
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


async def test_the_fuzzed_schema_is_the_served_one(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        served = (await api.get("/openapi.json")).json()
    assert served == DOCUMENT
    operations = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in operations), "an operation it cannot build"
    fuzzed = {result.ok().label for result in operations if isinstance(result, Ok)}
    assert fuzzed == {
        f"{method.upper()} {path}"
        for path, item in served["paths"].items()
        for method in item
        if method in METHODS
    }


async def test_a_method_not_allowed_names_every_method_of_the_path(make_api: ApiFactory) -> None:
    async with make_api() as (api, _):
        response = await api.request("OPTIONS", "/api/v1/counts")
    assert_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "GET, POST, PUT"


@pytest.mark.parametrize("count", [False, "12", 12.0, None])
async def test_a_body_value_of_the_wrong_type_is_refused(make_api: ApiFactory, count: Any) -> None:
    row = {"url": PAGE, "network": "hackernews", "count": count}
    async with make_api(admin_key=ADMIN_KEY) as (api, _):
        response = await api.post(
            "/api/v1/baselines",
            json={"rows": [row]},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    body = assert_error(response, 400, "invalid request")
    assert body["detail"][0]["where"] == "body.rows.0.count"
