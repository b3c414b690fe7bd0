"""Access: the admin key on every write, what reads may make flares track, CORS, body sizes."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import Redis
from typer.testing import CliRunner

from aggregator import cli
from aggregator.api import access
from aggregator.api.access import key_hash
from aggregator.api.app import create_app
from aggregator.config import Settings
from aggregator.store import NEW_URLS_TTL, Store
from tests.conftest import SettingsFactory
from tests.test_api import PAGE, ApiFactory, assert_error, make_api

__all__ = ["make_api"]

KEY = "a-long-random-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
WRITE_METHODS = {"POST", "PUT", "DELETE", "PATCH"}
JSON = "application/json"
SITE = "example.com"
OTHER_SITE = "example.org"


def writes(app: FastAPI) -> list[tuple[str, str]]:
    """Every write operation the app documents, as (method, path with its parameters filled)."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method in sorted(m.upper() for m in operations if m.upper() in WRITE_METHODS):
            if (method, path) != ("POST", "/api/v1/counts"):
                found.append((method, re.sub(r"\{[^}]+\}", "x", path)))
    return found


def client(address: str) -> dict[str, str]:
    """Headers of a request from `address`, as a proxy in front of flares tells it."""
    return {"X-Forwarded-For": address}


def read_of(n: int, site: str = SITE) -> dict[str, str]:
    return {"url": f"https://{site}/page/{n}"}


# --- writes and the admin key ---


async def test_every_write_is_refused_without_a_configured_key(
    make_api: ApiFactory, make_settings: SettingsFactory, redis_url: str, store: Store
) -> None:
    routes = writes(create_app(make_settings(), redis_url))
    async with make_api(insecure_open=False, allowed_domains=SITE) as (api, _):
        answers = [await api.request(m, p, json={"url": PAGE}) for m, p in routes]
        audit = await api.get("/api/v1/audit")
    expected = {
        ("POST", "/api/v1/urls"),
        ("POST", "/api/v1/urls/bulk"),
        ("DELETE", "/api/v1/urls"),
        ("PUT", "/api/v1/counts"),
        ("POST", "/api/v1/baselines"),
        ("POST", "/api/v1/refresh"),
    }
    assert expected <= set(routes)
    for (method, path), response in zip(routes, answers, strict=True):
        body = assert_error(response, 403, "writes are closed")
        assert "FLARES_ADMIN_KEY" in body["detail"], (method, path)
        assert "--insecure-open" in body["detail"]
        assert "access-control-allow-origin" not in response.headers
    assert_error(audit, 403, "writes are closed")
    assert await store.tracked_count() == 0


async def test_a_configured_key_is_required_and_enough(make_api: ApiFactory, store: Store) -> None:
    async with make_api(insecure_open=False, admin_key=KEY) as (api, _):
        anonymous = await api.post("/api/v1/urls", json={"url": PAGE})
        wrong = await api.post("/api/v1/urls", json={"url": PAGE}, headers={"Authorization": "x"})
        right = await api.post("/api/v1/urls", json={"url": PAGE}, headers=AUTH)
    assert_error(anonymous, 401, "admin key required")
    assert_error(wrong, 401, "admin key required")
    assert right.status_code == 201
    assert await store.tracked_count() == 1


async def test_the_key_may_be_configured_as_its_sha256(make_api: ApiFactory) -> None:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    assert key_hash(KEY) == f"sha256:{digest}"
    # Upper-case hex is the same hash.
    async with make_api(insecure_open=False, admin_key_hash=f"SHA256:{digest.upper()}") as (
        api,
        runtime,
    ):
        right = await api.post("/api/v1/urls", json={"url": PAGE}, headers=AUTH)
        the_hash = await api.post(
            "/api/v1/urls", json={"url": PAGE}, headers={"Authorization": f"Bearer {digest}"}
        )
        wrong = await api.post(
            "/api/v1/urls", json={"url": PAGE}, headers={"Authorization": "Bearer nope"}
        )
        log = (await api.get("/api/v1/audit", headers=AUTH)).json()["entries"]
    assert right.status_code == 201
    assert_error(the_hash, 401, "admin key required")
    assert_error(wrong, 401, "admin key required")
    # The audit log names the key by the same fingerprint whichever way it is configured.
    assert access.key_fingerprint(Settings(admin_key=KEY)) == log[0]["who"]
    assert KEY not in str(runtime.settings.model_dump())


@pytest.mark.parametrize(
    "value", ["md5:" + "0" * 64, "sha256:" + "0" * 63, "sha256:" + "g" * 64, "0" * 64]
)
def test_a_malformed_key_hash_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ValidationError, match="sha256:<64 hex digits>"):
        Settings(admin_key_hash=value)


async def test_the_key_is_compared_in_constant_time(
    make_api: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hmac.compare_digest decides: told to refuse everything, even the right key fails."""
    calls: list[tuple[bytes, bytes]] = []
    verdict = {"match": True}
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return verdict["match"] and compare(a, b)

    monkeypatch.setattr("hmac.compare_digest", spy)
    async with make_api(insecure_open=False, admin_key=KEY, admin_key_hash=key_hash(KEY)) as (
        api,
        _,
    ):
        accepted = await api.post("/api/v1/urls", json={"url": PAGE}, headers=AUTH)
        verdict["match"] = False
        refused = await api.post("/api/v1/urls", json={"url": PAGE}, headers=AUTH)
    assert accepted.status_code == 201
    assert_error(refused, 401, "admin key required")
    # Both configured forms, each compared whole: the plain key and the hash of the token.
    assert (KEY.encode(), KEY.encode()) in calls
    assert (key_hash(KEY).encode(), key_hash(KEY).encode()) in calls


# --- --insecure-open: the command line only ---


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, redis_url: str, redis: Redis) -> list[FastAPI]:
    """The apps `flares serve` builds, caught instead of served."""
    apps: list[FastAPI] = []
    monkeypatch.setenv("FLARES_REDIS_URL", redis_url)
    monkeypatch.setattr("uvicorn.run", lambda app, **_: apps.append(app))
    # serve takes over SIGTERM for its embedded server: not in the test process.
    monkeypatch.setattr("signal.signal", lambda *_: None)
    return apps


async def track_through(app: FastAPI) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flares") as api:
            return await api.post("/api/v1/urls", json={"url": PAGE})


async def test_insecure_open_comes_from_the_command_line_only(
    served: list[FastAPI], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    runner = CliRunner()
    # Neither a variable nor the configuration file opens writes.
    monkeypatch.setenv("FLARES_INSECURE_OPEN", "true")
    config = tmp_path / "flares.toml"
    config.write_text("insecure_open = true\n")
    closed = runner.invoke(cli.app, ["serve", "--no-scheduler", "--config", str(config)])
    opened = runner.invoke(cli.app, ["serve", "--no-scheduler", "--insecure-open"])
    assert (closed.exit_code, opened.exit_code) == (0, 0), closed.output + opened.output
    assert "writes are refused" in " ".join(closed.output.split())
    assert "anyone who can reach the port may write" in " ".join(opened.output.split())
    assert_error(await track_through(served[0]), 403, "writes are closed")
    assert (await track_through(served[1])).status_code == 201


def test_each_process_of_serve_workers_gets_the_flag_from_its_factory(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("FLARES_REDIS_URL", redis_url)
    monkeypatch.setenv("FLARES_INSECURE_OPEN", "true")
    assert cli.api_process().state.insecure_open is False
    assert cli.open_api_process().state.insecure_open is True


# --- reads: what they may make flares track ---


def limited(**limits: int) -> dict[str, Any]:
    """Settings for a test of the read limits: two allowed sites, clients told by a proxy."""
    base = {"new_per_client": 100, "new_per_domain": 100, "max_per_domain": 100}
    return {
        "allowed_domains": f"{SITE},{OTHER_SITE}",
        "trusted_proxies": 1,
        "limits": {**base, **limits},
    }


def assert_limit(response: httpx.Response, status: int, limit: str) -> dict[str, Any]:
    error = "too many new urls" if status == 429 else "too many tracked urls"
    body = assert_error(response, status, error)
    assert body["detail"]["limit"] == limit
    assert body["detail"]["setting"] == f"FLARES_LIMITS__{limit.upper()}"
    return body


async def test_new_pages_a_minute_per_client(make_api: ApiFactory, redis: Redis) -> None:
    address = "198.51.100.7"
    async with make_api(**limited(new_per_client=2)) as (api, _):
        first = [
            await api.get("/api/v1/counts", params=read_of(n), headers=client(address))
            for n in range(2)
        ]
        third = await api.get("/api/v1/counts", params=read_of(3), headers=client(address))
        elsewhere = await api.get(
            "/api/v1/counts", params=read_of(4, OTHER_SITE), headers=client(address)
        )
        again = await api.get("/api/v1/counts", params=read_of(0), headers=client(address))
        other = await api.get("/api/v1/counts", params=read_of(3), headers=client("203.0.113.9"))
    assert [r.status_code for r in first] == [202, 202]
    assert_limit(third, 429, "new_per_client")
    assert 1 <= int(third.headers["retry-after"]) <= 60
    # The limit is the client's, on every domain; pages already tracked it may read on.
    assert_limit(elsewhere, 429, "new_per_client")
    assert again.status_code == 202
    assert other.status_code == 202
    # The client's address is hashed before it reaches Redis.
    keys = [key async for key in redis.scan_iter()]
    assert keys and not any(address in key for key in keys)


async def test_new_pages_a_minute_per_domain(make_api: ApiFactory) -> None:
    async with make_api(**limited(new_per_domain=2)) as (api, _):
        answers = [
            await api.get("/api/v1/counts", params=read_of(n), headers=client(f"192.0.2.{n}"))
            for n in range(3)
        ]
        other = await api.get("/api/v1/counts", params=read_of(9, OTHER_SITE))
        subdomain = await api.get("/api/v1/counts", params={"url": f"https://blog.{SITE}/x"})
    assert [r.status_code for r in answers[:2]] == [202, 202]
    assert_limit(answers[2], 429, "new_per_domain")
    assert "retry-after" in answers[2].headers
    assert other.status_code == 202
    # A subdomain counts against the allowed domain it belongs to.
    assert_limit(subdomain, 429, "new_per_domain")


async def test_caps_per_domain_and_in_total(make_api: ApiFactory, store: Store) -> None:
    async with make_api(**limited(max_per_domain=2), admin_key=KEY) as (api, _):
        answers = [
            await api.get("/api/v1/counts", params=read_of(n), headers=client(f"192.0.2.{n}"))
            for n in range(3)
        ]
        other = await api.get("/api/v1/counts", params=read_of(9, OTHER_SITE))
        # The caps bound what reads add; the admin tracks on.
        admin = await api.post("/api/v1/urls", json=read_of(5), headers=AUTH)
    assert [r.status_code for r in answers[:2]] == [202, 202]
    body = assert_limit(answers[2], 403, "max_per_domain")
    assert body["detail"]["value"] == 2
    assert "retry-after" not in answers[2].headers
    assert other.status_code == 202
    assert admin.status_code == 201
    tracked = await store.tracked_count()
    async with make_api(**limited(max_total=tracked)) as (api, _):
        full = await api.get("/api/v1/counts", params=read_of(7, OTHER_SITE))
        known = await api.get("/api/v1/counts", params=read_of(0))
    assert_limit(full, 403, "max_total")
    assert known.status_code == 202
    assert await store.tracked_count() == tracked


async def test_badges_show_a_refusal_as_an_image(make_api: ApiFactory) -> None:
    async with make_api(**limited(new_per_client=1, max_per_domain=1)) as (api, _):
        await api.get("/badge.svg", params=read_of(0), headers=client("192.0.2.1"))
        capped = await api.get("/badge.svg", params=read_of(1), headers=client("192.0.2.2"))
        await api.get("/badge.svg", params=read_of(0, OTHER_SITE), headers=client("192.0.2.3"))
        rated = await api.get(
            "/bar.svg", params=read_of(1, OTHER_SITE), headers=client("192.0.2.3")
        )
    for response, message in ((capped, "limit reached"), (rated, "rate limited")):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert message in response.text


async def test_the_bulk_read_answers_each_refusal_on_its_own(make_api: ApiFactory) -> None:
    urls = [read_of(n)["url"] for n in range(3)] + ["https://elsewhere.test/x"]
    async with make_api(**limited(new_per_client=2)) as (api, _):
        response = await api.post("/api/v1/counts", json={"urls": urls})
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 429, 404]
    assert results[2]["error"]["detail"]["limit"] == "new_per_client"


async def test_the_counters_expire_and_the_cap_holds(store: Store, redis: Redis) -> None:
    assert [await store.count_new_url("c", "h1", 7) for _ in range(3)] == [1, 2, 3]
    assert await store.count_new_url("c", "h1", 8) == 1
    assert await store.count_new_url("d", SITE, 7) == 1
    keys = [key async for key in redis.scan_iter("*new:*")]
    assert len(keys) == 3
    for key in keys:
        assert 0 < await redis.ttl(key) <= NEW_URLS_TTL
    assert [await store.add_on_domain(SITE, 2) for _ in range(3)] == [True, True, False]
    await store.release_on_domain(SITE)
    assert await store.add_on_domain(SITE, 2)
    assert not await store.add_on_domain(SITE, 2)
    assert await store.add_on_domain(OTHER_SITE, 2)


# --- CORS ---


async def test_cors_is_open_for_reads_and_closed_for_writes(make_api: ApiFactory) -> None:
    origin = {"Origin": "https://blog.example.com"}

    def preflight(method: str, headers: str = "") -> dict[str, str]:
        asked = {"Access-Control-Request-Headers": headers} if headers else {}
        return {**origin, "Access-Control-Request-Method": method, **asked}

    async with make_api(allowed_domains=SITE, admin_key=KEY) as (api, _):
        read = await api.get("/api/v1/counts", params={"url": PAGE}, headers=origin)
        badge = await api.get("/badge.svg", params={"url": PAGE}, headers=origin)
        bulk = await api.post("/api/v1/counts", json={"urls": [PAGE]}, headers=origin)
        read_ok = await api.options("/api/v1/counts", headers=preflight("GET", "If-None-Match"))
        bulk_ok = await api.options("/api/v1/counts", headers=preflight("POST", "content-type"))
        write = await api.post(
            "/api/v1/urls", json={"url": "https://other.test/x"}, headers={**origin, **AUTH}
        )
        write_pre = await api.options("/api/v1/urls", headers=preflight("POST", "content-type"))
        delete_pre = await api.options("/api/v1/urls", headers=preflight("DELETE"))
        put_pre = await api.options("/api/v1/counts", headers=preflight("PUT", "content-type"))
        keyed_read = await api.options("/api/v1/audit", headers=preflight("GET", "authorization"))
    for response in (read, badge, bulk):
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers
    assert read_ok.status_code == 204
    assert read_ok.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "if-none-match" in read_ok.headers["access-control-allow-headers"]
    assert bulk_ok.status_code == 204
    assert write.status_code == 201
    assert not any(h.startswith("access-control-") for h in write.headers)
    for refused in (write_pre, delete_pre, put_pre):
        assert_error(refused, 403, "cross-origin write refused")
        assert not any(h.startswith("access-control-") for h in refused.headers)
    assert_error(keyed_read, 403, "cross-origin header refused")


# --- request bodies ---


async def chunks(size: int, piece: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, size, piece):
        yield b" " * min(piece, size - start)


async def test_oversize_bodies_are_413(make_api: ApiFactory, store: Store) -> None:
    limit = 2048
    padded = b'{"url": "' + PAGE.encode() + b'"}'
    async with make_api(limits={"max_body_bytes": limit}) as (api, _):
        declared = await api.post(
            "/api/v1/urls", content=padded + b" " * limit, headers={"content-type": JSON}
        )
        # No Content-Length: chunked, counted as the bytes stream in.
        streamed = await api.post(
            "/api/v1/urls",
            content=chunks(limit + 1),
            headers={"content-type": JSON},
        )
        nonsense = await api.post("/api/v1/urls", content=b"{}", headers={"content-length": "x"})
        fits = await api.post(
            "/api/v1/urls",
            content=padded + b" " * (limit - len(padded)),
            headers={"content-type": JSON},
        )
    assert "content-length" not in streamed.request.headers
    for response in (declared, streamed):
        body = assert_error(response, 413, "request body too large")
        assert "2048 bytes" in body["detail"]
        assert "FLARES_LIMITS__MAX_BODY_BYTES" in body["detail"]
    assert_error(nonsense, 400, "invalid request")
    assert fits.status_code == 201
    assert await store.tracked_count() == 1


async def test_the_default_limit_holds_a_full_bulk_read(make_settings: SettingsFactory) -> None:
    """1,000 URLs of 2,048 characters, in JSON, fit in the default body limit."""
    url = "https://elsewhere.test/" + "p" * (2048 - len("https://elsewhere.test/"))
    body = httpx.Request("POST", "http://x", json={"urls": [url] * 1000}).content
    assert len(url) == 2048
    assert len(body) <= make_settings().limits.max_body_bytes


# --- URLs through the API ---


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost/", "single-label"),
        ("http://intranet/page", "single-label"),
        ("https://exa_mple.com/", "valid host name"),
        ("https://-example.com/", "valid host name"),
        ("https://example.999/", "not an IP address"),
        ("https://example.com/\x85", "control"),
    ],
)
async def test_urls_without_a_real_host_are_400(
    make_api: ApiFactory, url: str, reason: str
) -> None:
    async with make_api(allowed_domains=SITE) as (api, _):
        read = await api.get("/api/v1/counts", params={"url": url})
        write = await api.post("/api/v1/urls", json={"url": url})
    for response in (read, write):
        body = assert_error(response, 400, "invalid url")
        assert reason in body["detail"]
