"""End to end over real sockets: `flares serve` and `flares worker` processes, CLI, restarts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.cluster import either_redis_url  # noqa: F401  (runs each test on both)
from tests.conftest import DEFAULT_ON
from tests.fakes import bluesky as fake_bluesky
from tests.fakes import reddit as fake_reddit
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import FlaresProcess, Service, providers_env, run_cli, wait_for

PAGE = "https://blog.example.com/2026/11/hello"
ADMIN_KEY = "e2e-admin-k3y"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def service_env(
    fake: FakeUpstream, data_dir: Path, enabled: Collection[str] = DEFAULT_ON
) -> dict[str, str]:
    """Every provider pointed at the fake upstream; only `enabled` ones switched on; the admin
    key set, which the CLI sends from the same settings."""
    return {
        "FLARES_ADMIN_KEY": ADMIN_KEY,
        "FLARES_DATA_DIR": str(data_dir),
        "FLARES_SCHEDULE__TICK_SECONDS": "0.2",
        "FLARES_SCHEDULE__FRESH_INTERVAL": "0.5",
        "FLARES_SCHEDULE__RETRY_INTERVAL": "0.5",
        "FLARES_HEALTH__FAILING_AFTER": "2",
        **providers_env(fake.base_url, enabled),
    }


def counts_when(service: Service, ready: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = service.get("/api/v1/counts", url=PAGE).json()
        return body if ready(body) else None

    return wait_for(probe, "the counts to reach the expected state")


def provider_states(service: Service) -> dict[str, str]:
    rows = service.get("/api/v1/providers").json()["providers"]
    return {row["name"]: row["state"] for row in rows if row["enabled"]}


def test_track_poll_serve_fail_and_restart(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    fake_upstream.set_count("hackernews", PAGE, 110)
    fake_upstream.set_count("hatena", PAGE, 141)
    env = service_env(fake_upstream, tmp_path / "data")
    service = Service(env, tmp_path / "serve.log").start()
    try:
        cli_env = {**env, "FLARES_PORT": str(service.port)}
        tracked = run_cli(["track", PAGE], cli_env)
        assert tracked.returncode == 0, tracked.stderr
        assert "tracking " + PAGE in tracked.stdout

        body = counts_when(service, lambda b: b["state"] == "ok" and b["total"] == 251)
        assert body["networks"]["hackernews"]["count"] == 110
        assert body["networks"]["hatena"]["count"] == 141
        badge = ET.fromstring(service.get("/badge.svg", url=PAGE).text)
        assert badge.attrib["aria-label"] == "flares: 251"
        one = ET.fromstring(service.get("/badge.svg", url=PAGE, network="hackernews").text)
        assert one.attrib["aria-label"] == "hacker news: 110"
        cli = run_cli(["counts", PAGE, "--json"], cli_env)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["total"] == 251
        assert provider_states(service) == {"hackernews": "ok", "hatena": "ok"}

        # The networks fail and report lower numbers: nothing served goes down.
        fake_upstream.set_count("hackernews", PAGE, 3)
        fake_upstream.set_fault("hatena", Fault("status", status=500))
        wait_for(
            lambda: provider_states(service)["hatena"] == "failing" or None,
            "hatena to be reported failing",
        )
        body = counts_when(service, lambda b: b["networks"]["hatena"]["state"] == "error")
        assert body["total"] == 251
        assert body["networks"]["hatena"]["count"] == 141
        assert body["networks"]["hatena"]["state"] == "error"
        assert provider_states(service)["hackernews"] == "ok"
        providers = run_cli(["providers", "--json"], cli_env)
        assert providers.returncode == 0, providers.stderr
        assert "HTTP 500" in providers.stdout
    finally:
        assert service.stop() == 0, service.output()

    # Every network down: what the restarted service serves comes from the data dir.
    fake_upstream.set_fault(None, Fault("status", status=503))
    again = Service(env, tmp_path / "serve-again.log").start()
    try:
        body = again.get("/api/v1/counts", url=PAGE).json()
        assert body["total"] == 251
        assert body["networks"]["hackernews"]["count"] == 110
    finally:
        assert again.stop() == 0, again.output()


def test_bad_input_over_http(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {**service_env(fake_upstream, tmp_path / "data"), "FLARES_ADMIN_KEY": "k3y"}
    service = Service(env, tmp_path / "serve.log").start()
    try:
        post = service.base_url + "/api/v1/urls"
        no_key = httpx.post(post, json={"url": PAGE})
        bad_url = httpx.post(
            post, json={"url": "mailto:x@y"}, headers={"Authorization": "Bearer k3y"}
        )
        unknown = service.get("/api/v1/counts", url="https://unknown.test/")
        assert (no_key.status_code, no_key.json()["error"]) == (401, "admin key required")
        assert (bad_url.status_code, bad_url.json()["error"]) == (400, "invalid url")
        assert (unknown.status_code, unknown.json()["error"]) == (404, "not tracked")
        refused = run_cli(
            ["track", PAGE], {**env, "FLARES_ADMIN_KEY": "wrong", "FLARES_PORT": str(service.port)}
        )
        assert refused.returncode == 1
        assert "401" in refused.stderr
        admin_env = {**env, "FLARES_PORT": str(service.port)}
        assert run_cli(["track", PAGE], admin_env).returncode == 0
        refreshed = run_cli(["refresh", "--all"], admin_env)
        assert (refreshed.returncode, refreshed.stdout.strip()) == (0, "refreshing 1 page(s)")
        nothing = run_cli(["refresh"], admin_env)
        assert nothing.returncode == 2
        assert "--domain or --all" in nothing.stderr
    finally:
        service.stop()


@pytest.mark.usefixtures("redis")  # an empty database
def test_api_and_worker_processes_share_redis(
    fake_upstream: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    fake_upstream.set_count("hatena", PAGE, 46)
    env = {**service_env(fake_upstream, tmp_path / "data"), "FLARES_REDIS_URL": redis_url}
    api = Service(env, tmp_path / "api.log", "--no-scheduler").start()
    worker = FlaresProcess(["worker"], env, tmp_path / "worker.log").start()
    try:
        tracked = httpx.post(api.base_url + "/api/v1/urls", json={"url": PAGE}, headers=AUTH)
        assert tracked.status_code == 201
        body = counts_when(api, lambda b: b["total"] == 46)
        assert body["networks"]["hatena"]["count"] == 46
        assert wait_for(lambda: api.get("/readyz").status_code == 200 or None, "readiness")
    finally:
        assert worker.stop() == 0, worker.output()
        api.stop()
    assert not (tmp_path / "data").exists(), "with FLARES_REDIS_URL no embedded server starts"


def test_worker_without_redis_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli(["worker"], {"FLARES_DATA_DIR": str(tmp_path / "none")})
    assert result.returncode == 2
    assert "FLARES_REDIS_URL" in result.stderr


@pytest.mark.parametrize("secret", ["hunter2-app-secret"])
def test_config_masks_secrets(secret: str, tmp_path: Path) -> None:
    config = tmp_path / "flares.toml"
    config.write_text('allowed_domains = ["example.com"]\n[schedule]\ntick_seconds = 7\n')
    result = run_cli(
        ["config", "--config", str(config)],
        {
            "FLARES_ADMIN_KEY": secret,
            "FLARES_PROVIDERS__HACKERNEWS__APP_SECRET": secret,
            "FLARES_REDIS_URL": f"redis://:{secret}@127.0.0.1:6379/0",
            "FLARES_SCHEDULE__TICK_SECONDS": "3",
        },
    )
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["allowed_domains"] == ["example.com"]
    assert shown["schedule"]["tick_seconds"] == 3.0, "the environment overrides the file"
    assert shown["redis_url"] == "redis://:***@127.0.0.1:6379/0"


# One distinct count per network, so a mixed-up network shows in the total.
EVERY_COUNT = {
    "facebook": 58,
    "twitter": 110,
    "pinterest": 7,
    "linkedin": 83,
    "buffer": 4,
    "googleplus": 2,
    "reddit": 31,
    "hackernews": 12,
    "hatena": 9,
    "vk": 5,
    "ok": 3,
    "tumblr": 6,
    "bluesky": 11,
}
SECRETS = {
    "FLARES_ADMIN_KEY": "adm1n-k3y/with+chars=&",
    "FLARES_PROVIDERS__FACEBOOK__APP_ID": "fb-app-id-771",
    "FLARES_PROVIDERS__FACEBOOK__APP_SECRET": "fb/app+secret=&9",
    "FLARES_PROVIDERS__TWITTER__BEARER_TOKEN": "AAAA-tw/bearer+token=",
    "FLARES_PROVIDERS__REDDIT__CLIENT_ID": fake_reddit.CLIENT_ID,
    "FLARES_PROVIDERS__REDDIT__CLIENT_SECRET": fake_reddit.CLIENT_SECRET,
    "FLARES_PROVIDERS__BLUESKY__HANDLE": fake_bluesky.HANDLE,
    "FLARES_PROVIDERS__BLUESKY__APP_PASSWORD": fake_bluesky.APP_PASSWORD,
}


def leaked(text: str) -> list[str]:
    """The secrets that appear in `text`, raw or URL-encoded."""
    return [
        name
        for name, secret in SECRETS.items()
        if any(form in text for form in {secret, quote(secret, safe=""), quote_plus(secret)})
    ]


def test_every_provider_at_once_and_no_secret_anywhere(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    for network, count in EVERY_COUNT.items():
        fake_upstream.set_count(network, PAGE, count)
    env = {
        **service_env(fake_upstream, tmp_path / "data", enabled=EVERY_COUNT),
        **SECRETS,
        # Their share clicks by default; here the counts their (mirrored) APIs answer.
        "FLARES_PROVIDERS__LINKEDIN__SOURCE": "api",
        "FLARES_PROVIDERS__BUFFER__SOURCE": "api",
    }
    service = Service(env, tmp_path / "serve.log").start()
    cli_env = {**env, "FLARES_PORT": str(service.port)}
    outputs: list[str] = []
    try:
        assert run_cli(["track", PAGE], cli_env).returncode == 0
        body = counts_when(service, lambda b: b["total"] == sum(EVERY_COUNT.values()))
        assert {n: v["count"] for n, v in body["networks"].items()} == EVERY_COUNT
        assert body["networks"]["reddit"]["parts"]["score"] == EVERY_COUNT["reddit"]
        states = provider_states(service)
        # Retired networks stay "retired" even while a mirror answers for them.
        assert {n for n, s in states.items() if s != "ok"} == {"googleplus", "linkedin"}
        assert {states["googleplus"], states["linkedin"]} == {"retired"}
        outputs.append(json.dumps(body))

        # Every network now answers garbage that quotes every secret, and Facebook says the
        # token is invalid, quoting it: none of it may come back out of flares.
        echo = " ".join(SECRETS.values()).encode()
        fake_upstream.set_fault(None, Fault("answer", status=200, body=b"<html>" + echo))
        graph_error = json.dumps(
            {"error": {"code": 190, "type": "OAuthException", "message": echo.decode()}}
        )
        fake_upstream.set_fault("facebook", Fault("answer", status=400, body=graph_error.encode()))
        wait_for(
            lambda: (
                all(
                    row["last_error"]
                    for row in service.get("/api/v1/providers").json()["providers"]
                )
                or None
            ),
            "every provider to record its error",
        )
        assert provider_states(service)["facebook"] == "rejected"
        for path in ["/api/v1/providers", "/openapi.json", "/readyz"]:
            outputs.append(service.get(path).text)
        outputs += [service.get(f"/api/v1/providers/{name}").text for name in EVERY_COUNT]
        outputs.append(service.get("/api/v1/counts", url=PAGE).text)
        for args in (["providers"], ["providers", "--json"], ["counts", PAGE], ["config"]):
            result = run_cli(args, cli_env)
            assert result.returncode == 0, result.stderr
            outputs += [result.stdout, result.stderr]
        assert body["total"] == sum(EVERY_COUNT.values())
    finally:
        service.stop()
    outputs.append(service.output())
    assert [leaked(text) for text in outputs] == [[] for _ in outputs]
