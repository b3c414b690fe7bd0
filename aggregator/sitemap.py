"""A site's pages from its sitemaps (sitemaps.org): sitemap indexes, gzip, and limits on all of it.

A hostile or broken sitemap costs bounded work: each file is read up to `max_bytes` after
decompression and up to `max_urls` entries, indexes nest at most `max_depth` levels, the whole
read stops at its deadline, and every request, redirects included, stays on the allowed
domains. The XML parser refuses any DOCTYPE, so no entity can expand (the billion laughs) or
reach outside the file (XXE); that is what defusedxml would refuse, without a dependency.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

import httpx

from aggregator.urls import InvalidURL, canonical

GZIP_MAGIC = b"\x1f\x8b"
# The entries a sitemap's <loc> may be in, by its root element.
ENTRIES = {"urlset": "url", "sitemapindex": "sitemap"}


@dataclass(frozen=True)
class Limits:
    # Per file: the protocol's own limits (50 MB uncompressed, 50,000 URLs).
    max_bytes: int = 50 * 1024 * 1024
    max_urls: int = 50_000
    max_total: int = 500_000
    max_depth: int = 3
    # Seconds: per request, and for the whole read.
    timeout: float = 30.0
    deadline: float = 600.0


@dataclass
class Report:
    """What a read found: the pages in scope, once each, and what was skipped and why."""

    pages: list[str] = field(default_factory=list)
    sitemaps: int = 0
    off_domain: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)


class SitemapError(Exception):
    """One sitemap could not be read; the others still are."""


class _OutOfTime(Exception):
    pass


class _Full(Exception):
    pass


class _Parser:
    """The root element and the <loc> values of one sitemap, without any DTD."""

    def __init__(self, max_urls: int) -> None:
        self.max_urls = max_urls
        self.root = ""
        self.locs: list[str] = []
        self.truncated = False
        self._path: list[str] = []
        self._text: list[str] | None = None
        self._expat = expat.ParserCreate(namespace_separator=" ")
        self._expat.StartDoctypeDeclHandler = self._doctype
        self._expat.StartElementHandler = self._start
        self._expat.EndElementHandler = self._end
        self._expat.CharacterDataHandler = self._chars

    def parse(self, data: bytes) -> None:
        try:
            self._expat.Parse(data, True)
        except _Full:
            self.truncated = True
        except expat.ExpatError as exc:
            raise SitemapError(f"not well-formed XML: {exc}") from exc

    def _doctype(self, *_: Any) -> None:
        raise SitemapError("refused: the XML declares a DOCTYPE, which a sitemap never needs")

    def _start(self, name: str, _: Any) -> None:
        local = name.rpartition(" ")[2]
        if not self._path:
            if local not in ENTRIES:
                raise SitemapError(f"not a sitemap: the root element is <{local}>")
            self.root = local
        self._path.append(local)
        if self._path[1:] == [ENTRIES[self.root], "loc"]:
            self._text = []

    def _chars(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _end(self, _: str) -> None:
        if self._text is not None:
            if len(self.locs) == self.max_urls:
                raise _Full
            self.locs.append("".join(self._text).strip())
            self._text = None
        self._path.pop()


def _gunzip(data: bytes, limit: int) -> bytes:
    inflate = zlib.decompressobj(wbits=31)
    try:
        # Never more than the limit in memory, however well a bomb compresses.
        out = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise SitemapError(f"broken gzip: {exc}") from exc
    if len(out) > limit:
        raise SitemapError(f"larger than {limit} bytes once decompressed")
    if not inflate.eof:
        raise SitemapError("truncated gzip")
    return out


class _Reader:
    def __init__(
        self,
        client: httpx.Client,
        in_scope: Callable[[str], bool],
        limits: Limits,
        tracking: Collection[str],
    ) -> None:
        self.client = client
        self.in_scope = in_scope
        self.limits = limits
        self.tracking = tracking
        self.deadline = time.monotonic() + limits.deadline
        self.report = Report()
        self._pages: set[str] = set()

    def fetch(self, url: str) -> bytes:
        """The body of one sitemap, gunzipped when it is gzip (by its magic bytes, whatever
        its name or headers say)."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _OutOfTime
        body = bytearray()
        timeout = min(self.limits.timeout, remaining)
        try:
            with self.client.stream("GET", url, timeout=timeout) as response:
                if response.status_code != 200:
                    raise SitemapError(f"HTTP {response.status_code}")
                # Raw: a gzip Content-Encoding is undone below, within the limit.
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > self.limits.max_bytes:
                        raise SitemapError(f"larger than {self.limits.max_bytes} bytes")
                    if time.monotonic() > self.deadline:
                        raise _OutOfTime
        except httpx.HTTPError as exc:
            if time.monotonic() > self.deadline:
                raise _OutOfTime from exc
            raise SitemapError(f"cannot fetch: {exc}") from exc
        if body.startswith(GZIP_MAGIC):
            return _gunzip(bytes(body), self.limits.max_bytes)
        return bytes(body)

    def accept(self, loc: str) -> str | None:
        """A <loc> as a canonical URL in scope; None, counted, when it is not."""
        try:
            url = canonical(loc, self.tracking)
        except InvalidURL:
            self.report.invalid += 1
            return None
        if not self.in_scope(url):
            self.report.off_domain += 1
            return None
        return url

    def run(self, start: str) -> Report:
        todo = deque([(start, 0)])
        queued = {start}
        problems = self.report.problems
        while todo:
            url, depth = todo.popleft()
            parser = _Parser(self.limits.max_urls)
            try:
                parser.parse(self.fetch(url))
            except SitemapError as exc:
                problems.append(f"{url}: {exc}")
                continue
            except _OutOfTime:
                problems.append(f"{url}: stopped at the time limit ({self.limits.deadline:g} s)")
                break
            self.report.sitemaps += 1
            if parser.truncated:
                problems.append(f"{url}: only its first {self.limits.max_urls} entries were read")
            if parser.root == "sitemapindex" and depth >= self.limits.max_depth:
                problems.append(f"{url}: indexes nest deeper than {self.limits.max_depth} levels")
                continue
            for loc in parser.locs:
                found = self.accept(loc)
                if found is None:
                    continue
                if parser.root == "sitemapindex":
                    if found not in queued:
                        queued.add(found)
                        todo.append((found, depth + 1))
                elif found not in self._pages:
                    if len(self._pages) == self.limits.max_total:
                        problems.append(f"{url}: stopped at {self.limits.max_total} pages in all")
                        return self.report
                    self._pages.add(found)
                    self.report.pages.append(found)
        return self.report


def read_sitemaps(
    url: str,
    in_scope: Callable[[str], bool],
    *,
    user_agent: str,
    limits: Limits = Limits(),
    tracking: Collection[str] = (),
) -> Report:
    """Every page in scope that the sitemap (or sitemap index) at `url` lists; sitemaps that
    cannot be read, and limits reached, are in the report's problems."""

    def stay_in_scope(request: httpx.Request) -> None:
        if not in_scope(str(request.url)):
            raise SitemapError(f"refused: {request.url.host} is not an allowed domain")

    with httpx.Client(
        # Only gzip, which fetch() can undo within its limit.
        headers={"User-Agent": user_agent, "Accept-Encoding": "gzip"},
        follow_redirects=True,
        max_redirects=5,
        event_hooks={"request": [stay_in_scope]},
    ) as client:
        return _Reader(client, in_scope, limits, tracking).run(url)
