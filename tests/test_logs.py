"""Logging: JSON lines or text, request ids on every record of a request, nothing secret."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request
from redis.asyncio import Redis
from typer.testing import CliRunner

from aggregator.api.app import create_app
from aggregator.cli import app as cli
from aggregator.logs import LogFormat, RequestContext, configure, current_request
from tests.conftest import SettingsFactory
from tests.fakeupstream import FakeUpstream
from tests.service import FlaresProcess, free_port, providers_env, wait_for

SECRET = "s3cret/key with+chars=&"
VISITOR = "203.0.113.77"
log = logging.getLogger("tests.logs")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextmanager
def logged(
    log_format: LogFormat = "json", *, tty: bool = False, secrets: tuple[str, ...] = (SECRET,)
) -> Iterator[io.StringIO]:
    """Logging set up as `flares` sets it up, into a buffer that holds every line on exit."""
    stream = Terminal() if tty else io.StringIO()
    restore = configure(log_format, secrets, stream)
    try:
        yield stream
    finally:
        restore()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("log_format", "tty", "as_json"),
    [
        ("auto", False, True),
        ("auto", True, False),
        ("json", True, True),
        ("text", False, False),
    ],
)
def test_json_lines_off_a_terminal_text_on_one_unless_told(
    log_format: LogFormat, tty: bool, as_json: bool
) -> None:
    with logged(log_format, tty=tty) as stream:
        log.warning("disk %s is %d%% full", "/data", 93)
    [line] = stream.getvalue().splitlines()
    if as_json:
        record = json.loads(line)
        assert (record["level"], record["logger"]) == ("WARNING", "tests.logs")
        assert record["message"] == "disk /data is 93% full"
    else:
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \S+ WARNING tests\.logs: disk /data is 93% full", line
        )


def test_a_json_record_has_its_time_request_id_fields_and_traceback() -> None:
    token = current_request.set(RequestContext("req-1"))
    try:
        with logged() as stream:
            try:
                raise ValueError("bad value")
            except ValueError:
                log.exception("failed", extra={"network": "reddit", "urls": 3})
    finally:
        current_request.reset(token)
    [record] = records(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record.pop("time"))
    error = record.pop("error")
    assert error.startswith("Traceback") and error.endswith("ValueError: bad value")
    assert record == {
        "level": "ERROR",
        "logger": "tests.logs",
        "message": "failed",
        "request_id": "req-1",
        "network": "reddit",
        "urls": 3,
    }


def test_text_shows_the_request_id() -> None:
    token = current_request.set(RequestContext("req-2"))
    try:
        with logged("text") as stream:
            log.info("hello")
    finally:
        current_request.reset(token)
    assert stream.getvalue().rstrip().endswith("INFO tests.logs [req-2]: hello")


def test_every_form_of_a_secret_is_scrubbed_from_every_part_of_a_record() -> None:
    encoded = "s3cret%2Fkey%20with%2Bchars%3D%26"
    with logged() as stream:
        log.warning("token " + SECRET)
        log.warning("calling %s", f"https://graph.example/?access_token={encoded}")
        log.warning("form %s", "key=s3cret%2Fkey+with%2Bchars%3D%26")
        log.warning("detail", extra={"body": f'{{"password": "{SECRET}"}}'})
        try:
            raise RuntimeError(f"upstream said {SECRET}")
        except RuntimeError:
            log.exception("request failed")
        log.warning("stack", stack_info=True, extra={"note": SECRET})
    text = stream.getvalue()
    assert SECRET not in text and encoded not in text
    assert "s3cret" not in text
    lines = records(stream)
    assert [r["message"] for r in lines] == [
        "token ***",
        "calling https://graph.example/?access_token=***",
        "form key=***",
        "detail",
        "request failed",
        "stack",
    ]
    assert lines[3]["body"] == '{"password": "***"}'
    assert lines[4]["error"].endswith("RuntimeError: upstream said ***")


def test_the_client_address_is_scrubbed_while_its_request_is_handled() -> None:
    token = current_request.set(RequestContext("req-3", (VISITOR,)))
    try:
        with logged() as stream:
            log.warning("visitor %s", VISITOR)
    finally:
        current_request.reset(token)
    with logged() as outside:
        log.warning("documentation range %s", VISITOR)
    assert records(stream)[0]["message"] == "visitor ***"
    assert records(outside)[0]["message"] == f"documentation range {VISITOR}"


def test_a_call_whose_arguments_do_not_fit_is_logged_not_raised() -> None:
    with logged() as stream:
        log.warning("%d URLs", "many")
    [record] = records(stream)
    assert record["message"].startswith("%d URLs")


def test_configure_puts_the_previous_handlers_back() -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    with logged():
        assert root.handlers != before[0]
    assert (root.handlers, root.level) == before


def test_a_command_leaves_no_handler_behind() -> None:
    root = logging.getLogger()
    before = root.handlers[:]
    result = CliRunner().invoke(cli, ["config"], env={"FLARES_ADMIN_KEY": SECRET})
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert root.handlers == before


@asynccontextmanager
async def api_on(
    redis_url: str, make_settings: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with two more routes: one that logs the client's address, one that fails."""
    app = create_app(make_settings(), redis_url, scheduler=False)

    async def whoami(request: Request) -> dict[str, str]:
        log.warning("request from %s", request.headers.get("x-forwarded-for"))
        return {}

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test/whoami", whoami)
    app.add_api_route("/test/broken", broken)
    async with app.router.lifespan_context(app):
        # As uvicorn answers it: the 500 goes out, then the exception goes on up.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://flares") as client:
            yield client


async def test_each_request_gets_an_id_on_its_answer_and_its_records(
    make_settings: SettingsFactory, redis_url: str, redis: Redis
) -> None:
    with logged() as stream:
        async with api_on(redis_url, make_settings) as api:
            given = await api.get("/healthz?token=abc", headers={"X-Request-ID": "trace-42.a:b_c"})
            made = [await api.get("/healthz") for _ in range(2)]
            refused = [
                await api.get("/healthz", headers={"X-Request-ID": bad})
                for bad in ("x" * 65, "two words", "", "<script>", "a\tb")
            ]
            seen = await api.get("/test/whoami", headers={"X-Forwarded-For": VISITOR})
            failed = await api.get("/test/broken")
    assert given.headers["x-request-id"] == "trace-42.a:b_c"
    ids = [r.headers["x-request-id"] for r in [*made, *refused]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert failed.status_code == 500
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records(stream):
        by_id.setdefault(record.get("request_id", ""), []).append(record)
    [access] = by_id["trace-42.a:b_c"]
    assert access["logger"] == "flares.access"
    assert {k: access[k] for k in ("method", "path", "status")} == {
        "method": "GET",
        "path": "/healthz",
        "status": 200,
    }
    assert access["duration_ms"] >= 0
    assert "token" not in json.dumps(access), "the query is not logged"
    handled, access = by_id[seen.headers["x-request-id"]]
    assert handled["message"] == "request from ***"
    assert VISITOR not in stream.getvalue()
    error, access = by_id[failed.headers["x-request-id"]]
    assert (error["message"], access["status"]) == ("unhandled error", 500)
    assert error["error"].endswith("RuntimeError: a bug")


async def test_a_record_logged_by_flares_while_handling_carries_the_id(
    make_settings: SettingsFactory,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with logged() as stream:
        async with api_on(nowhere, make_settings) as api:
            response = await api.get("/metrics")
    assert response.status_code == 503
    rid = response.headers["x-request-id"]
    mine = [r for r in records(stream) if r.get("request_id") == rid]
    assert [r["logger"] for r in mine] == ["aggregator.api.metrics", "flares.access"]
    assert mine[0]["level"] == "WARNING"


def test_the_setting_makes_a_process_log_text_off_a_terminal(
    redis_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Every provider off (and on the fake): whatever another test left due is not fetched.
    env = {
        "FLARES_REDIS_URL": redis_url,
        "FLARES_LOG_FORMAT": "text",
        **providers_env(fake_upstream.base_url, ()),
    }
    worker = FlaresProcess(["worker"], env, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: "worker polling" in worker.output() or None, "the worker to start")
    finally:
        assert worker.stop() == 0, worker.output()
    lines = worker.output().splitlines()
    assert lines, "the worker logged"
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \S+ [A-Z]+ [\w.]+: .+", line), line
