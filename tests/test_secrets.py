"""Every secret set, a visitor behind a proxy, networks that quote credentials back: nothing
flares writes (logs, answers, headers, Redis) holds a secret or the visitor's address."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import httpx
import pytest
from redis import Redis
from typer.testing import CliRunner

from aggregator.cli import app as cli
from aggregator.config import SECRET_FIELDS
from tests.fakes import bluesky as fake_bluesky
from tests.fakes import reddit as fake_reddit
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import FlaresProcess, Service, wait_for
from tests.test_e2e import service_env

PAGE = "https://blog.example.com/2026/11/secrets"
OTHER = "https://blog.example.com/2026/11/other"
VISITOR = "203.0.113.77"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
COUNTS = {
    "hackernews": 12,
    "hatena": 9,
    "facebook": 58,
    "twitter": 110,
    "reddit": 31,
    "bluesky": 11,
}
REDIS_USER = "flares-secrets"
REDIS_PASSWORD = "r3dis/pass+word=&Q"
# Reddit and Bluesky get the credentials their fakes accept, so their auth steps succeed (and
# hand out tokens) before the networks start quoting everything back.
SECRETS = {
    "FLARES_ADMIN_KEY": "adm1n/K3y+secret=&A",
    "FLARES_SHARE_SALT": "sh4re-salt/secret+B=",
    "FLARES_PROVIDERS__FACEBOOK__APP_ID": "fb-app-id-4471C",
    "FLARES_PROVIDERS__FACEBOOK__APP_SECRET": "fb/app+secret=&D",
    "FLARES_PROVIDERS__TWITTER__BEARER_TOKEN": "AAAA-bearer/token+E=",
    "FLARES_PROVIDERS__REDDIT__CLIENT_ID": fake_reddit.CLIENT_ID,
    "FLARES_PROVIDERS__REDDIT__CLIENT_SECRET": fake_reddit.CLIENT_SECRET,
    "FLARES_PROVIDERS__BLUESKY__HANDLE": fake_bluesky.HANDLE,
    "FLARES_PROVIDERS__BLUESKY__APP_PASSWORD": fake_bluesky.APP_PASSWORD,
}
ADMIN = {"Authorization": f"Bearer {SECRETS['FLARES_ADMIN_KEY']}"}
WRONG = {"Authorization": "Bearer not-the-admin-key"}


def forms(secret: str) -> set[str]:
    """The ways a secret could be written out: raw, URL-encoded, form-encoded."""
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def password_url(redis_url: str) -> Iterator[str]:
    """The test Redis, as a user whose password is in the URL; its database flushed first."""
    admin = Redis.from_url(redis_url)
    admin.flushdb()
    admin.acl_setuser(
        REDIS_USER,
        enabled=True,
        passwords=[f"+{REDIS_PASSWORD}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    parts = urlsplit(redis_url)
    netloc = f"{REDIS_USER}:{quote(REDIS_PASSWORD, safe='')}@{parts.hostname}:{parts.port}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    finally:
        admin.acl_deluser(REDIS_USER)
        admin.close()


def dump(redis: Redis, key: bytes) -> object:
    """What a key holds, whatever its type."""
    raw = redis.type(key)
    kind = raw.decode() if isinstance(raw, bytes) else raw
    if kind == "hash":
        return redis.hgetall(key)
    if kind == "list":
        return redis.lrange(key, 0, -1)
    if kind == "set":
        return redis.smembers(key)
    if kind == "zset":
        return redis.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return redis.xrange(key)
    return redis.get(key)


def stored(url: str) -> list[str]:
    """Every key of the database and every value under it, as text."""
    with Redis.from_url(url) as redis:
        return [f"{key!r} {dump(redis, key)!r}" for key in redis.scan_iter(count=1000)]


def shown(response: httpx.Response) -> str:
    return f"{response.status_code} {response.headers!r}\n{response.text}"


def json_lines(text: str) -> list[dict[str, object]]:
    """Each line of a process's output as the JSON record it must be."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_no_secret_or_visitor_address_anywhere(
    fake_upstream: FakeUpstream, password_url: str, tmp_path: Path
) -> None:
    configured = {name.rsplit("__", 1)[-1].lower() for name in SECRETS}
    assert set(SECRET_FIELDS) <= configured, "every credential field is set"
    for network, count in COUNTS.items():
        fake_upstream.set_count(network, PAGE, count)
    env = {
        **service_env(fake_upstream, tmp_path / "data", enabled=COUNTS),
        **SECRETS,
        "FLARES_REDIS_URL": password_url,
        "FLARES_TRUSTED_PROXIES": "1",
        # A request held up (a busy slot, a lost answer) costs this, not the default 10 s.
        **{f"FLARES_PROVIDERS__{name.upper()}__TIMEOUT": "2" for name in COUNTS},
    }
    # Started first: it loads while `serve` does.
    worker = FlaresProcess(["worker"], env, tmp_path / "worker.log").start()
    service = Service(env, tmp_path / "serve.log")
    outputs: dict[str, str] = {}
    # As a proxy in front of flares would send them: the visitor's address on every request.
    client = httpx.Client(
        base_url=service.base_url,
        timeout=10,
        headers={"X-Forwarded-For": VISITOR, "User-Agent": BROWSER},
    )

    def call(method: str, path: str, expect: int, **kwargs: object) -> httpx.Response:
        response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == expect, (path, response.text)
        outputs[f"{method} {path} {kwargs}"] = shown(response)
        return response

    def states() -> dict[str, dict[str, object]]:
        rows = client.get("/api/v1/providers").json()["providers"]
        return {row["name"]: row for row in rows if row["enabled"]}

    try:
        service.start()
        call("POST", "/api/v1/urls", 401, json={"url": PAGE}, headers=WRONG)
        call("POST", "/api/v1/urls", 201, json={"url": PAGE}, headers=ADMIN)
        wait_for(
            lambda: (
                client.get("/api/v1/counts", params={"url": PAGE}).json()["total"]
                == sum(COUNTS.values())
                or None
            ),
            "every network's count",
        )
        # Every network now fails, quoting what it was sent (credentials and tokens included).
        fake_upstream.set_fault(None, Fault("echo", status=401))
        # ...and Facebook's in a 200, whose parse error excerpts the answer.
        fake_upstream.set_fault("facebook", Fault("echo", status=200))
        call("POST", "/api/v1/refresh", 200, json={"url": PAGE}, headers=ADMIN)
        wait_for(
            lambda: all(row["last_error"] for row in states().values()) or None,
            "every provider to record the error it was answered",
        )
        read = {"url": PAGE}
        for path in (
            "/api/v1/counts",
            "/api/v1/history",
            "/api/v1/shields",
            "/badge.svg",
            "/badge/twitter.svg",
            "/badge/trend.svg",
            "/bar.svg",
            "/widget",
        ):
            call("GET", path, 200, params=read)
        for path in (
            "/api/v1/providers",
            *(f"/api/v1/providers/{name}" for name in COUNTS),
            "/api/v1/sites/blog.example.com",
            "/api/v1/sites/blog.example.com/top",
            "/status",
            "/metrics",
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/embed.js",
        ):
            call("GET", path, 200)
        share = call(
            "GET", "/share/twitter", 302, params={"url": PAGE, "title": "t"}, follow_redirects=False
        )
        assert share.headers["location"].startswith("https://")
        writes: list[tuple[str, str, int, dict[str, object]]] = [
            ("PUT", "/api/v1/counts", 200, {"json": {"url": PAGE, "network": "ok", "count": 4}}),
            (
                "POST",
                "/api/v1/baselines",
                200,
                {"json": {"rows": [{**read, "network": "vk", "count": 2}]}},
            ),
            ("POST", "/api/v1/urls/bulk", 200, {"json": {"urls": [OTHER]}}),
            ("POST", "/api/v1/refresh", 200, {"json": {"all": True}}),
            ("DELETE", "/api/v1/urls", 200, {"params": {"url": OTHER}}),
            ("GET", "/api/v1/audit", 200, {}),
        ]
        for method, path, status, kwargs in writes:
            call(method, path, 401, headers=WRONG, **kwargs)
            call(method, path, status, headers=ADMIN, **kwargs)
        given = call("GET", "/healthz", 200, headers={"X-Request-ID": "trace-4711"})
        assert given.headers["x-request-id"] == "trace-4711"
        # The configuration as `flares config` shows it (in this process: it starts faster).
        shown_config = CliRunner().invoke(cli, ["config"], env=env)
        assert shown_config.exit_code == 0, shown_config.output
        outputs["flares config"] = shown_config.output
    finally:
        client.close()
        worker.stop()
        service.stop()
    outputs["flares serve"], outputs["flares worker"] = service.output(), worker.output()
    for number, entry in enumerate(stored(password_url)):
        outputs[f"redis entry {number}"] = entry

    # The networks did see the credentials, and flares the visitor: there was something to leak.
    calls = fake_upstream.calls()
    assert [c.path for c in calls if c.network is None] == [], "only networks' endpoints called"
    auths = [
        value.split(" ") for c in calls for name, value in c.headers if name == "authorization"
    ]
    tokens = {value for scheme, value in auths if scheme.lower() == "bearer"}
    sent = " ".join(f"{c.params} {c.headers} {c.body!r}" for c in calls)
    sent += " ".join(base64.b64decode(v).decode() for s, v in auths if s.lower() == "basic")
    secrets = {name.removeprefix("FLARES_"): value for name, value in SECRETS.items()}
    secrets["REDIS_PASSWORD"] = REDIS_PASSWORD
    secrets |= {f"token {n}": token for n, token in enumerate(sorted(tokens))}
    secrets["REDDIT_BASIC"] = basic(fake_reddit.CLIENT_ID, fake_reddit.CLIENT_SECRET)
    upstream = {"ADMIN_KEY", "SHARE_SALT", "REDIS_PASSWORD"}
    assert [n for n, s in secrets.items() if n not in upstream and s not in sent] == []
    assert len(tokens) >= 2, "reddit's and bluesky's auth steps handed out tokens"

    leaks = [
        (where, name)
        for where, text in outputs.items()
        for name, secret in [*secrets.items(), ("visitor address", VISITOR)]
        if any(form in text for form in forms(secret))
    ]
    assert leaks == []

    # Both processes wrote structured records only, none of them uvicorn's access log; the
    # request that brought its own id got it on its access record.
    records = json_lines(outputs["flares serve"]) + json_lines(outputs["flares worker"])
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    access = [r for r in records if r["logger"] == "flares.access"]
    assert {"method": "GET", "path": "/healthz", "status": 200, "request_id": "trace-4711"} in [
        {k: r.get(k) for k in ("method", "path", "status", "request_id")} for r in access
    ]
