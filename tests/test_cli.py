"""`flares providers` against the API served by uvicorn on loopback, in a thread of this process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from typer.testing import CliRunner

from aggregator.api.app import create_app
from aggregator.cli import app as cli
from aggregator.runtime import open_runtime
from tests.conftest import SettingsFactory
from tests.fakeupstream import FakeUpstream, Fault
from tests.service import free_port, wait_for
from tests.test_api import PAGE
from tests.test_metrics import SCHEDULE

WIDTH = 120


@pytest.fixture
def served(make_settings: SettingsFactory, redis_url: str, redis: Redis) -> Iterator[str]:
    """The API's base URL; its scheduler is off, so the test's own runtime does the polling."""
    app = create_app(make_settings(), redis_url, scheduler=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="flares-api", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or None, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


async def test_providers_table_and_json(
    served: str, make_settings: SettingsFactory, redis_url: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_fault("hatena", Fault("status", status=503))
    # No URL comes due again while the test reads: the two reads of the queue must agree.
    async with open_runtime(make_settings(schedule=SCHEDULE), redis_url) as runtime:
        await runtime.store.track(PAGE, time.time())
        for _ in range(2):
            await runtime.store.refresh([PAGE], time.time())
            await runtime.poller.tick()
    runner = CliRunner()

    table = runner.invoke(cli, ["providers", "--api", served], env={"COLUMNS": str(WIDTH)})
    as_json = runner.invoke(cli, ["providers", "--api", served, "--json"])
    async with httpx.AsyncClient(base_url=served) as client:
        api = (await client.get("/api/v1/providers")).json()

    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, table.stdout
    rows = {line.split()[1]: line for line in lines if line.startswith("│ ")}
    assert "failing" in rows["hatena"]
    assert "ok" in rows["hackernews"]
    assert "retired" in rows["linkedin"]
    assert "disabled" in rows["vk"]
    words = " ".join(table.stdout.replace("│", " ").split())
    assert "http 503" in words
    assert "HTTP 503" in words
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == api
