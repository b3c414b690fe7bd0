"""The counts each page was last served with, to answer from while Redis is away."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from aggregator.api.deps import get_admission, get_runtime, lookup, parse_url
from aggregator.api.errors import STORE_DOWN
from aggregator.api.limits import Admission
from aggregator.runtime import Runtime
from aggregator.store import UrlRecord

# Sent with every answer built from the cache: the counts may be behind what Redis holds.
STALE_HEADERS = {"Flares-Stale": "true", "Cache-Control": "no-store"}


class LastServed:
    """The last record served per page, least recently served dropped first; one per app."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._records: OrderedDict[str, UrlRecord] = OrderedDict()

    def keep(self, record: UrlRecord, asked: str | None = None) -> None:
        """Hold the record just served, as the most recent, under its page's URL and the URL
        it was asked for (an alias of the page)."""
        if self._size <= 0:
            return
        for url in {record.url, asked or record.url}:
            self._records[url] = record
            self._records.move_to_end(url)
        while len(self._records) > self._size:
            self._records.popitem(last=False)

    def get(self, url: str) -> UrlRecord | None:
        """The record last served for a canonical URL, if still held."""
        record = self._records.get(url)
        if record is not None:
            self._records.move_to_end(url)
        return record


@dataclass(frozen=True)
class Read:
    """A page's record, and whether it came from the cache because Redis did not answer."""

    record: UrlRecord
    stale: bool = False


async def read(
    runtime: Runtime, last: LastServed | None, raw_url: str, admission: Admission
) -> Read:
    """The page's record from Redis; while Redis is away the last one served, else the error."""
    try:
        record = await lookup(runtime, raw_url, admission)
    except STORE_DOWN:
        held = last.get(parse_url(raw_url, runtime.settings)) if last is not None else None
        if held is None:
            raise
        return Read(held, stale=True)
    if last is not None:
        # Only a page with aliases can have been asked for by another URL.
        last.keep(record, parse_url(raw_url, runtime.settings) if record.aliases else None)
    return Read(record)


async def get_last_served(request: Request) -> LastServed:
    last: LastServed = request.app.state.last_served
    return last


LastServedDep = Annotated[LastServed, Depends(get_last_served)]


@dataclass(frozen=True)
class Reader:
    """What a read route needs, solved as one dependency, not three (FastAPI spends some 10 us
    a request on each): the runtime, what this client may track, the counts last served."""

    runtime: Runtime
    admission: Admission
    last: LastServed

    async def read(self, raw_url: str) -> Read:
        return await read(self.runtime, self.last, raw_url, self.admission)


async def get_reader(request: Request) -> Reader:
    runtime, last = await get_runtime(request), await get_last_served(request)
    return Reader(runtime, await get_admission(request), last)


ReaderDep = Annotated[Reader, Depends(get_reader)]
