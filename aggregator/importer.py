"""Share counts exported by other plugins, CSV or JSON, read into baseline rows line by line.

Two shapes, in either format: one row per count (`url,network,count`), or one row per page with
a column (or key) per network, as Flare and Social Warfare export them. Network names are
matched loosely (`Google+`, `google_plus`, `plusone`, `_facebook_shares`); columns that name no
network (a title, a total) are ignored and listed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.store import MAX_COUNT
from aggregator.urls import InvalidURL, canonical

URL_KEYS = ("url", "permalink", "link")
# Other plugins' names for a network, after _key() has normalised them.
ALIASES = {
    "google+": "googleplus",
    "google_plus": "googleplus",
    "gplus": "googleplus",
    "plusone": "googleplus",
    "plusones": "googleplus",
    "pin": "pinterest",
    "pins": "pinterest",
    "pinit": "pinterest",
    "pin_it": "pinterest",
    "tweets": "twitter",
    "tweet": "twitter",
    "x": "twitter",
    "fb": "facebook",
    "linked_in": "linkedin",
    "hacker_news": "hackernews",
    "hn": "hackernews",
    "mail": "email",
    "e_mail": "email",
}
_SEPARATORS = re.compile(r"[\s\-]+")
_SUFFIXES = ("_shares", "_share_count", "_count")
_WHITESPACE = re.compile(r"\s*")
_INTEGER = re.compile(r"-?[0-9]+")


class UnreadableFile(Exception):
    """The file as a whole cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Row:
    line: int
    url: str
    network: str
    count: int


@dataclass
class Parsed:
    """The rows to import, the lines skipped with the reason, and the columns ignored."""

    rows: list[Row] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)


def _key(name: str) -> str:
    """A column name as the aliases spell it: `_LinkedIn_Shares` -> `linkedin`."""
    key = _SEPARATORS.sub("_", name.strip().lower()).strip("_")
    for suffix in _SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key.removesuffix(suffix)
            break
    return ALIASES.get(key, key)


def _count(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"the count {value!r} is not a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError(f"the count {value!r} is not a whole number")
    if value < 0:
        raise ValueError(f"the count {value} is negative")
    if value > MAX_COUNT:
        raise ValueError(f"the count {value} is above {MAX_COUNT}")
    return value


class _Reader:
    """Turns records (a line number and its fields) into rows, problems and ignored names."""

    def __init__(self, known: Collection[str], tracking: Collection[str]) -> None:
        self.known = known
        self.tracking = tracking
        self.parsed = Parsed()

    def record(self, line: int, fields: Any) -> None:
        try:
            if not isinstance(fields, Mapping):
                raise ValueError("not an object")
            self.parsed.rows += self._rows(line, fields)
        except ValueError as exc:
            self.parsed.problems.append((line, str(exc)))

    def _rows(self, line: int, fields: Mapping[str, Any]) -> list[Row]:
        by_key = {_key(k): v for k, v in fields.items() if isinstance(k, str)}
        raw = next((by_key[k] for k in URL_KEYS if by_key.get(k)), None)
        if not isinstance(raw, str):
            raise ValueError("no url")
        try:
            url = canonical(raw.strip(), self.tracking)
        except InvalidURL as exc:
            raise ValueError(f"invalid url {raw!r}: {exc}") from exc
        if "network" in by_key:
            name = _key(str(by_key["network"] or ""))
            if name not in self.known:
                raise ValueError(f"unknown network {by_key['network']!r}")
            if by_key.get("count") in (None, ""):
                raise ValueError("no count")
            return [Row(line, url, name, _count(by_key["count"]))]
        rows = []
        for original, value in fields.items():
            name = _key(original)
            if name in URL_KEYS:
                continue
            if name not in self.known:
                self.parsed.ignored.add(original)
            elif value not in (None, ""):
                try:
                    rows.append(Row(line, url, name, _count(value)))
                except ValueError as exc:
                    raise ValueError(f"{original}: {exc}") from exc
        if not rows:
            raise ValueError("no count of a known network")
        return rows


def _csv_records(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise UnreadableFile("line 1: no header (url,network,count, or url and one per network)")
    for cells in reader:
        if any(c.strip() for c in cells):
            # A short row leaves its last columns empty; cells past the header are dropped.
            yield reader.line_num, dict(zip(header, cells, strict=False))


def _json_records(text: str) -> Iterator[tuple[int, Any]]:
    """The elements of the top-level JSON list, each with the line it starts on."""
    decoder = json.JSONDecoder()
    line, counted = 1, 0

    def skip(pos: int) -> int:
        match = _WHITESPACE.match(text, pos)
        assert match is not None
        return match.end()

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    pos = skip(0)
    if text[pos : pos + 1] != "[":
        raise UnreadableFile(f"line {line_at(pos)}: the JSON must be a list of objects")
    pos = skip(pos + 1)
    if text[pos : pos + 1] == "]":
        return
    while True:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"line {exc.lineno}: invalid JSON: {exc.msg}") from exc
        yield line_at(pos), item
        pos = skip(end)
        if text[pos : pos + 1] == "]" and not text[pos + 1 :].strip():
            return
        if text[pos : pos + 1] != ",":
            raise UnreadableFile(f"line {line_at(pos)}: invalid JSON: expected ',' or ']'")
        pos = skip(pos + 1)


def read_counts(path: Path, known: Collection[str], tracking: Collection[str] = ()) -> Parsed:
    """The baseline rows of a CSV or JSON export (JSON when named .json or starting with `[`),
    with each malformed line's number and reason; raises UnreadableFile for the whole file."""
    try:
        # Spreadsheets save CSV with a byte order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"cannot read {path}: {exc}") from exc
    reader = _Reader(known, tracking)
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        for line, item in _json_records(text):
            reader.record(line, item)
    else:
        try:
            for line, cells in _csv_records(text):
                reader.record(line, cells)
        except csv.Error as exc:
            raise UnreadableFile(f"invalid CSV: {exc}") from exc
    return reader.parsed
