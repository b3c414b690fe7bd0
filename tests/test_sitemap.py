"""Sitemaps served on 127.0.0.1: what gets read, what is refused, and `flares track --sitemap`."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from redis.asyncio import Redis

from aggregator.sitemap import Limits, Report, read_sitemaps
from aggregator.store import Store
from aggregator.urls import domain_allowed
from tests.service import Service, run_cli
from tests.test_import import cli_env, service

__all__ = ["service"]

ELSEWHERE = "https://other.example.org"
DEFAULTS = Limits()
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol4;</loc></url></urlset>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY page SYSTEM "file:///etc/hostname">]>
<urlset><url><loc>http://127.0.0.1/&page;</loc></url></urlset>
"""


@dataclass(frozen=True)
class File:
    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


class Site:
    """A web server on 127.0.0.1 that serves the files a test puts in it, and logs requests."""

    def __init__(self) -> None:
        self.files: dict[str, File] = {}
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

            def do_GET(self) -> None:
                site.requests.append(self.path)
                file = site.files.get(self.path, File(b"not found", status=404))
                time.sleep(file.delay)
                self.send_response(file.status)
                for name, value in file.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(file.body)))
                self.end_headers()
                self.wfile.write(file.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def read(self, path: str, limits: Limits = DEFAULTS) -> Report:
        """The sitemap at `path` as flares reads it, with only this site's host in scope."""
        return read_sitemaps(
            self.url(path),
            lambda url: domain_allowed(url, ["127.0.0.1"]),
            user_agent="flares-test",
            limits=limits,
        )


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def urlset(*locs: str) -> bytes:
    entries = "".join(f"<url><loc>{escape(loc)}</loc><priority>1</priority></url>" for loc in locs)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
    ).encode()


def index(*locs: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{escape(loc)}</loc></sitemap>" for loc in locs)
    return f"<sitemapindex>{entries}</sitemapindex>".encode()


def pages(site: Site, *names: str) -> list[str]:
    return [site.url(f"/{name}") for name in names]


def test_plain_sitemap_keeps_pages_in_scope_once_each(site: Site) -> None:
    a, b = pages(site, "a", "b")
    site.files["/sitemap.xml"] = File(
        urlset(a, b, f"  {a}?utm_source=feed ", f"{ELSEWHERE}/x", "not a url", "")
    )
    report = site.read("/sitemap.xml")
    assert report.pages == [a, b]
    assert (report.sitemaps, report.off_domain, report.invalid) == (1, 1, 2)
    assert report.problems == []


def test_gzip_by_its_magic_bytes_or_its_content_encoding(site: Site) -> None:
    site.files["/pages.xml.gz"] = File(gzip.compress(urlset(*pages(site, "a"))))
    encoded = (("Content-Encoding", "gzip"), ("Content-Type", "application/xml"))
    site.files["/encoded.xml"] = File(gzip.compress(urlset(*pages(site, "b"))), headers=encoded)
    assert site.read("/pages.xml.gz").pages == pages(site, "a")
    assert site.read("/encoded.xml").pages == pages(site, "b")


def test_index_of_two_sitemaps_and_one_elsewhere(site: Site) -> None:
    site.files["/one.xml"] = File(urlset(*pages(site, "a", "b")))
    site.files["/two.xml.gz"] = File(gzip.compress(urlset(*pages(site, "b", "c"))))
    site.files["/index.xml"] = File(
        index(site.url("/one.xml"), site.url("/two.xml.gz"), f"{ELSEWHERE}/sitemap.xml")
    )
    report = site.read("/index.xml")
    assert report.pages == pages(site, "a", "b", "c")
    assert (report.sitemaps, report.off_domain) == (3, 1)
    assert site.requests == ["/index.xml", "/one.xml", "/two.xml.gz"]


def test_a_sitemap_over_the_url_limit_gives_its_first_50000(site: Site) -> None:
    site.files["/big.xml"] = File(urlset(*(site.url(f"/p{n}") for n in range(50_001))))
    report = site.read("/big.xml")
    assert len(report.pages) == 50_000
    assert report.pages[-1] == site.url("/p49999")
    assert report.problems == [f"{site.url('/big.xml')}: only its first 50000 entries were read"]


def test_the_total_limit_stops_the_read(site: Site) -> None:
    site.files["/one.xml"] = File(urlset(*pages(site, "a", "b")))
    site.files["/two.xml"] = File(urlset(*pages(site, "c", "d")))
    site.files["/index.xml"] = File(index(site.url("/one.xml"), site.url("/two.xml")))
    report = site.read("/index.xml", Limits(max_total=3))
    assert report.pages == pages(site, "a", "b", "c")
    assert report.problems == [f"{site.url('/two.xml')}: stopped at 3 pages in all"]


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "xxe"])
def test_a_doctype_is_refused(site: Site, body: bytes) -> None:
    site.files["/evil.xml"] = File(body)
    site.files["/evil.xml.gz"] = File(gzip.compress(body))
    for path in ("/evil.xml", "/evil.xml.gz"):
        report = site.read(path)
        assert report.pages == []
        assert report.sitemaps == 0
        [problem] = report.problems
        assert "refused: the XML declares a DOCTYPE" in problem


def test_size_limits_hold_for_gzip_bombs_and_plain_files(site: Site) -> None:
    padding = b"<!-- " + b"x" * 2_000_000 + b" -->"
    site.files["/bomb.xml.gz"] = File(gzip.compress(urlset(*pages(site, "a")) + padding))
    site.files["/large.xml"] = File(urlset(*pages(site, "a")) + padding)
    limits = Limits(max_bytes=1_000_000)
    assert len(site.files["/bomb.xml.gz"].body) < 10_000
    [bomb] = site.read("/bomb.xml.gz", limits).problems
    assert bomb.endswith("larger than 1000000 bytes once decompressed")
    [large] = site.read("/large.xml", limits).problems
    assert large.endswith("larger than 1000000 bytes")


def test_indexes_nest_at_most_three_levels(site: Site) -> None:
    site.files["/pages.xml"] = File(urlset(*pages(site, "a")))
    site.files["/i3.xml"] = File(index(site.url("/pages.xml")))
    for n in (2, 1, 0):
        site.files[f"/i{n}.xml"] = File(index(site.url(f"/i{n + 1}.xml")))
    assert site.read("/i1.xml").pages == pages(site, "a")
    deep = site.read("/i0.xml")
    assert deep.pages == []
    assert deep.problems == [f"{site.url('/i3.xml')}: indexes nest deeper than 3 levels"]


def test_an_index_that_lists_itself_is_read_once(site: Site) -> None:
    site.files["/index.xml"] = File(index(site.url("/index.xml")))
    assert site.read("/index.xml").sitemaps == 1
    assert site.requests == ["/index.xml"]


def test_slow_sitemaps_time_out_and_the_read_has_a_deadline(site: Site) -> None:
    site.files["/slow.xml"] = File(urlset(*pages(site, "a")), delay=1.0)
    site.files["/fast.xml"] = File(urlset(*pages(site, "b")))
    site.files["/index.xml"] = File(index(site.url("/slow.xml"), site.url("/fast.xml")))
    timed_out = site.read("/index.xml", Limits(timeout=0.2))
    assert timed_out.pages == pages(site, "b")
    [problem] = timed_out.problems
    assert problem.startswith(f"{site.url('/slow.xml')}: cannot fetch")
    started = time.monotonic()
    stopped = site.read("/index.xml", Limits(deadline=0.3))
    assert time.monotonic() - started < 1.0
    assert stopped.pages == []
    assert stopped.problems == [f"{site.url('/slow.xml')}: stopped at the time limit (0.3 s)"]


def test_redirects_stay_on_the_allowed_domains(site: Site) -> None:
    site.files["/pages.xml"] = File(urlset(*pages(site, "a")))
    here = site.url("/pages.xml")
    away = here.replace("127.0.0.1", "localhost")
    site.files["/moved.xml"] = File(b"", status=301, headers=(("Location", here),))
    site.files["/away.xml"] = File(b"", status=302, headers=(("Location", away),))
    assert site.read("/moved.xml").pages == pages(site, "a")
    [problem] = site.read("/away.xml").problems
    assert problem.endswith("refused: localhost is not an allowed domain")


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        (File(b"gone", status=404), "HTTP 404"),
        (File(b"<rss><channel/></rss>"), "not a sitemap: the root element is <rss>"),
        (File(b"<urlset><url><loc>x</url>"), "not well-formed XML"),
        (File(gzip.compress(urlset())[:20]), "truncated gzip"),
    ],
)
def test_what_is_not_a_sitemap_is_reported(site: Site, file: File, problem: str) -> None:
    site.files["/sitemap.xml"] = file
    report = site.read("/sitemap.xml")
    assert report.problems[0].startswith(f"{site.url('/sitemap.xml')}: {problem}")


async def test_track_sitemap_through_the_service(
    site: Site, service: Service, store: Store, redis: Redis
) -> None:
    site.files["/one.xml"] = File(urlset(*pages(site, "a", "b"), f"{ELSEWHERE}/x"))
    site.files["/two.xml.gz"] = File(gzip.compress(urlset(*pages(site, "b", "c"))))
    site.files["/evil.xml"] = File(BILLION_LAUGHS)
    site.files["/index.xml"] = File(
        index(site.url("/one.xml"), site.url("/two.xml.gz"), f"{ELSEWHERE}/sitemap.xml")
    )
    first = run_cli(["track", "--sitemap", site.url("/index.xml")], cli_env(service))
    assert first.returncode == 0, first.stderr
    assert (
        "3 sitemap(s), 3 page(s): 3 newly tracked, 0 already tracked; "
        "skipped 2 on other domains, 0 invalid"
    ) in first.stdout
    assert "3/3" in first.stderr
    assert await store.tracked_count() == 3
    for url in pages(site, "a", "b", "c"):
        assert await store.due_at(url) is not None
    [entry] = await store.audit_log(10)
    assert (entry.action, entry.target) == ("track.bulk", "3 urls")

    again = run_cli(["track", "--sitemap", site.url("/one.xml")], cli_env(service))
    assert "1 sitemap(s), 2 page(s): 0 newly tracked, 2 already tracked" in again.stdout

    evil = run_cli(["track", "--sitemap", site.url("/evil.xml")], cli_env(service))
    assert evil.returncode == 1
    assert "DOCTYPE" in evil.stderr

    foreign = run_cli(["track", "--sitemap", f"{ELSEWHERE}/sitemap.xml"], cli_env(service))
    assert foreign.returncode == 2
    assert "other.example.org is not in FLARES_ALLOWED_DOMAINS" in foreign.stderr
    assert await store.tracked_count() == 3


def test_track_needs_urls_or_a_sitemap(tmp_path: Path) -> None:
    result = run_cli(["track"], {"FLARES_PORT": "9"})
    assert result.returncode == 2
    assert "give URLs or --sitemap" in result.stderr
