"""The Redis data model; the only module that knows key names and how a record is packed.

Keys (prefix `flares:`):
- `due`                  sorted set: URL id -> unix time it is next due (a claim leases it by
                         pushing the score forward, so a dead worker's URLs come due again)
- `r:<bucket>`           hash: URL id -> the URL's record, packed with MessagePack (see below);
                         URLs are spread over BUCKETS hashes by their id
- `names`                hash: network or part name -> the small number records use for it
- `{provider:<name>}`    hash: last_success_at, last_failure_at, last_error (and its _kind and
                         _status), consecutive_failures, ok_since and failing_since (when the
                         current run of successes or failures began), throttled_until and
                         throttled_since, rejected (fingerprint of the credentials a network
                         refused), rejected_reason, and the circuit breaker's breaker_until,
                         breaker_since and probe_until
- `{provider:<name>}:budget`  hash: the request budget's window number and counts (gate.py)
- `{provider:<name>}:slots`   sorted set: requests in flight, scored by when their slot expires
- `{provider:<name>}:stats`   hash: request outcomes, 404s, a latency histogram and the URLs the
                         network answered 0 for after a positive count, per minute in a ring of
                         the last hour (fields `<name>:<minute % 60>`, `t:<slot>` the minute a
                         slot holds) and since the start (fields without a slot, for Prometheus)
- `heartbeat`            string with a TTL, set by every running scheduler

A URL's id is 8 bytes of its BLAKE2b hash in base64url (11 characters): the URL itself is
stored once, inside its record, and the due queue holds only ids. Small hashes of short-keyed
records are what keep a tracked URL under 300 bytes of Redis memory (bench/memory.py): Redis
packs a hash of at most `hash-max-listpack-entries` fields, each at most
`hash-max-listpack-value` bytes, into one flat listpack, without a per-field allocation.

A record is the array `[url, tracked_at, updated_at, networks]`, times in whole seconds
(0: never), `networks` a map from a name's number to `[count, fetched_at, extra]`: count -1
until the network first answers, and `extra` (left out when empty) a map with `x` the time of
the last failure since the last success, `o` set when an admin forced a refresh that this
network has not answered yet, `s` the value last seen when lower than the count, `p` the parts
the network reported (by name number), and for networks that report a recent window only, `d`
the counts of each day (days since 1970) plus `b`, the sum of the days folded out of the window.
Flags rather than time comparisons keep whole seconds exact enough: a failure and a success, or
a refresh and a fetch, may fall in the same second.

The provider keys share a hash tag so that the gate's scripts touch one cluster slot.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, cast

import msgpack
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from providers.base import Observation

PREFIX = "flares:"
DUE = PREFIX + "due"
HEARTBEAT = PREFIX + "heartbeat"
NAMES = PREFIX + "names"
# Fixed for the life of a data set: a URL's bucket is derived from its id. 8192 buckets keep
# every bucket a listpack up to about 4 million URLs with 512 entries a bucket.
BUCKETS = 8192
# Server settings under which every bucket stays a listpack; records run to a few hundred bytes,
# above Redis's default limit of 64 (the README says how to set these on your own server).
COMPACT_HASHES = {"hash-max-listpack-entries": 512, "hash-max-listpack-value": 1024}

# A record's fields and their defaults; the Lua below indexes the same array from 1.
_URL, _TRACKED, _UPDATED, _NETWORKS = range(4)

_TRACK = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cmsgpack.unpack(raw)[1] == ARGV[2] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({ARGV[2], tonumber(ARGV[3]), 0, {}}))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
end
return ids
"""

# One call merges a whole batch of one network: KEYS[i] is the bucket of the i-th URL, whose
# arguments follow the shared ones as: id, count, #parts, (part, value)..., #days, (day, value)...
# The last key is the provider's stats, which learn how many URLs that had a count the network
# now answered 0 for (how a network's shutdown looks from outside).
# Never lower a served count: the network's value is kept as `s` when lower, while the count
# only rises. Day buckets replace the same day's earlier value (never add to it); days older
# than the cutoff are folded into `b`, and an incoming day older than the cutoff is ignored
# because it was folded in already. Returns per URL -1 untracked, 0 no rise, 1 rose, 2 first.
_MERGE_BODY = """
local code, now, cutoff = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stats = KEYS[#KEYS]
local results, had, zeroed = {}, 0, 0
local i = 4
for k = 1, #KEYS - 1 do
  local id, new = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local raw = redis.call('HGET', KEYS[k], id)
  local rec = raw and cmsgpack.unpack(raw)
  local e = rec and rec[4][code] or {-1, 0}
  local x = e[3] or {}
  local nparts = tonumber(ARGV[i])
  if nparts > 0 then x.p = x.p or {} end
  for _ = 1, nparts do
    x.p[tonumber(ARGV[i + 1])] = tonumber(ARGV[i + 2])
    i = i + 2
  end
  i = i + 1
  local ndays = tonumber(ARGV[i])
  if ndays > 0 then
    local days = x.d or {}
    for _ = 1, ndays do
      local day = tonumber(ARGV[i + 1])
      if day >= cutoff then days[day] = tonumber(ARGV[i + 2]) end
      i = i + 2
    end
    local base, recent, kept = x.b or 0, 0, {}
    for day, v in pairs(days) do
      if day < cutoff then base = base + v else recent = recent + v; kept[day] = v end
    end
    x.d, x.b = kept, base
    new = base + recent
  end
  i = i + 1
  if not rec then
    results[k] = -1
  else
    local cur = e[1]
    results[k] = 0
    if cur > 0 then
      had = had + 1
      if new == 0 then zeroed = zeroed + 1 end
    end
    if new > cur then
      results[k] = cur >= 0 and 1 or 2
      e[1] = new
    end
    e[2] = now
    x.s = new < e[1] and new or nil
    x.x, x.o = nil, nil
    e[3] = next(x) and x or nil
    rec[4][code] = e
    rec[3] = now
    redis.call('HSET', KEYS[k], id, cmsgpack.pack(rec))
  end
end
if had > 0 then
  local slot = stats_slot(stats, now)
  stats_add(stats, slot, 'had', had)
  stats_add(stats, slot, 'zero', zeroed)
end
return results
"""

# Only a tracked URL gets a failure time: a URL dropped while its fetch ran must not come back.
_FAILED = """
local code, now = tonumber(ARGV[1]), tonumber(ARGV[2])
for k = 1, #KEYS do
  local raw = redis.call('HGET', KEYS[k], ARGV[k + 2])
  if raw then
    local rec = cmsgpack.unpack(raw)
    local e = rec[4][code] or {-1, 0}
    e[3] = e[3] or {}
    e[3].x = now
    rec[4][code] = e
    redis.call('HSET', KEYS[k], ARGV[k + 2], cmsgpack.pack(rec))
  end
end
"""

# An admin's refresh: due now (never later than it was) and fetched afresh by every network.
_FORCE_BODY = """
local function force(bucket, id, rec, now)
  for _, e in pairs(rec[4]) do
    e[3] = e[3] or {}
    e[3].o = 1
  end
  redis.call('HSET', bucket, id, cmsgpack.pack(rec))
  redis.call('ZADD', KEYS[2], 'XX', 'LT', now, id)
end
"""
_FORCE = (
    _FORCE_BODY
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
force(KEYS[1], ARGV[1], cmsgpack.unpack(raw), tonumber(ARGV[2]))
return 1
"""
)

# Every URL of one bucket whose host is the domain or one of its subdomains ('' for all).
# Canonical URLs are `scheme://host[:port]/...` with a lower-case host, IPv6 in brackets.
_FORCE_BUCKET = (
    _FORCE_BODY
    + """
local domain, now, n = ARGV[1], tonumber(ARGV[2]), 0
local items = redis.call('HGETALL', KEYS[1])
for j = 1, #items, 2 do
  local rec = cmsgpack.unpack(items[j + 1])
  local authority = string.match(rec[1], '^[^:]+://([^/?#]*)') or ''
  local host = string.match(authority, '^%b[]') or string.match(authority, '^[^:]*')
  if domain == '' or host == domain
      or (#host > #domain and string.sub(host, -#domain - 1) == '.' .. domain) then
    force(KEYS[1], items[j], rec, now)
    n = n + 1
  end
end
return n
"""
)

# A throttle that extends one still running keeps its start.
_THROTTLE = """
if tonumber(redis.call('HGET', KEYS[1], 'throttled_until') or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'throttled_since', ARGV[2])
end
redis.call('HSET', KEYS[1], 'throttled_until', ARGV[1])
"""

# Numbers for names, given once and never changed, so that every process reads them alike.
_NAME = """
local codes = {}
for k = 1, #ARGV do
  local code = redis.call('HGET', KEYS[1], ARGV[k])
  if not code then
    code = redis.call('HLEN', KEYS[1]) + 1
    redis.call('HSET', KEYS[1], ARGV[k], code)
  end
  codes[k] = tonumber(code)
end
return codes
"""

# Upper bounds (seconds) of the request latency histogram, as Prometheus buckets; one more
# bucket takes everything slower.
LATENCY_BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HOUR_SLOTS = 60
_LATENCY_FIELDS = tuple(f"h{i}" for i in range(len(LATENCY_BOUNDS) + 1))
_SLOT_FIELDS = ("ok", "failed", "neutral", "nf", "zero", "had", "lat", *_LATENCY_FIELDS)

# Lua functions shared by the scripts that record into a provider's stats: the ring slot of the
# current minute, emptied first when it still holds the same minute of an earlier hour.
STATS_LUA = """
local function stats_slot(key, now)
  local minute = math.floor(now / 60)
  local slot = ':' .. (minute % HOUR_SLOTS)
  if tonumber(redis.call('HGET', key, 't' .. slot) or '-1') ~= minute then
    local stale = {}
    for _, f in ipairs({SLOT_FIELDS}) do stale[#stale + 1] = f .. slot end
    redis.call('HDEL', key, unpack(stale))
    redis.call('HSET', key, 't' .. slot, minute)
  end
  return slot
end

local function stats_add(key, slot, field, by)
  redis.call('HINCRBYFLOAT', key, field .. slot, by)
  redis.call('HINCRBYFLOAT', key, field, by)
end
""".replace("HOUR_SLOTS", str(HOUR_SLOTS)).replace(
    "SLOT_FIELDS", ", ".join(f"'{f}'" for f in _SLOT_FIELDS)
)


# Lua holds numbers as doubles: above 2^53 a count would lose digits.
MAX_COUNT = 2**53 - 1
# Day buckets stay separate this many days (X reports 7), then fold into one number.
DAY_WINDOW = 8
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def url_id(url: str) -> str:
    """The short, fixed-length name of a URL in the due queue and its bucket."""
    digest = hashlib.blake2b(url.encode(), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def record_location(url_or_id: str, *, is_id: bool = False) -> tuple[str, str]:
    """The bucket key and field that hold a URL's record."""
    ident = url_or_id if is_id else url_id(url_or_id)
    raw = base64.urlsafe_b64decode(ident + "=")
    return f"{PREFIX}r:{int.from_bytes(raw[:4], 'big') % BUCKETS}", ident


def bucket_keys() -> list[str]:
    return [f"{PREFIX}r:{n}" for n in range(BUCKETS)]


def provider_key(name: str) -> str:
    return f"{PREFIX}{{provider:{name}}}"


def stats_key(name: str) -> str:
    return provider_key(name) + ":stats"


def budget_key(name: str) -> str:
    return provider_key(name) + ":budget"


def slots_key(name: str) -> str:
    return provider_key(name) + ":slots"


class UrlIdCollision(Exception):
    """Two URLs share an id: astronomically rare (64-bit hash), but never silently merged."""

    def __init__(self, url: str) -> None:
        super().__init__(f"another tracked URL has the same id as {url}")
        self.url = url


@dataclass(frozen=True)
class NetworkRecord:
    """What the store holds for one network of one URL."""

    count: int | None
    seen: int | None
    fetched_at: float | None
    # The last failure since the last success; None once the network answers again.
    failed_at: float | None
    parts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UrlRecord:
    """A tracked URL with its counts; the total is their sum, so it can never disagree."""

    url: str
    tracked_at: float
    updated_at: float | None
    networks: dict[str, NetworkRecord] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(n.count for n in self.networks.values() if n.count is not None)


@dataclass(frozen=True)
class Claim:
    """A leased URL: when it was first tracked, and when each network last answered for it
    (None: never, or not since an admin forced a refresh)."""

    tracked_at: float
    fetched: dict[str, float | None]


@dataclass(frozen=True)
class ProviderRecord:
    """Health bookkeeping of one provider."""

    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_status: int | None = None
    consecutive_failures: int = 0
    ok_since: float | None = None
    failing_since: float | None = None
    throttled_until: float | None = None
    throttled_since: float | None = None
    rejected: str | None = None
    rejected_reason: str | None = None
    breaker_until: float | None = None
    breaker_since: float | None = None

    def breaker(self, now: float) -> Literal["closed", "open", "half-open"]:
        """The circuit breaker's state: open until its cool-down ends, then half-open."""
        if self.breaker_until is None:
            return "closed"
        return "open" if now < self.breaker_until else "half-open"


@dataclass(frozen=True)
class Tally:
    """A provider's requests and answers counted over a span of time."""

    ok: int = 0
    failed: int = 0
    neutral: int = 0
    # Failed requests that got HTTP 404.
    not_found: int = 0
    # URLs that had a count and were answered for, and those of them the network answered 0 for.
    had: int = 0
    zeroed: int = 0
    latency_sum: float = 0.0
    # The start of the earliest minute with a failed request (the last hour's tally only).
    first_failure_at: float | None = None
    # Requests per latency bucket (LATENCY_BOUNDS, then slower), not cumulative.
    latencies: tuple[int, ...] = (0,) * (len(LATENCY_BOUNDS) + 1)

    @property
    def requests(self) -> int:
        return self.ok + self.failed + self.neutral


@dataclass(frozen=True)
class ProviderStats:
    """A provider's tallies over the last hour and since its stats began."""

    hour: Tally
    lifetime: Tally


def _tally(raw: Mapping[str, str], slots: Sequence[str] = ("",)) -> Tally:
    def total(name: str) -> float:
        return sum(float(raw.get(name + slot, 0)) for slot in slots)

    failing = [int(raw["t" + s]) * 60 for s in slots if s and float(raw.get("failed" + s, 0))]

    return Tally(
        ok=int(total("ok")),
        failed=int(total("failed")),
        neutral=int(total("neutral")),
        not_found=int(total("nf")),
        had=int(total("had")),
        zeroed=int(total("zero")),
        latency_sum=total("lat"),
        first_failure_at=float(min(failing)) if failing else None,
        latencies=tuple(int(total(f"h{i}")) for i in range(len(LATENCY_BOUNDS) + 1)),
    )


def _provider_stats(raw: Mapping[str, str], now: float) -> ProviderStats:
    minute = math.floor(now / 60)
    slots = [
        key[1:]
        for key, value in raw.items()
        if key.startswith("t:") and minute - HOUR_SLOTS < int(value) <= minute
    ]
    return ProviderStats(hour=_tally(raw, slots), lifetime=_tally(raw))


def _seconds(now: float) -> int:
    return math.floor(now)


def _time(value: int) -> float | None:
    return float(value) if value else None


def _capped(count: int) -> int:
    return min(max(count, 0), MAX_COUNT)


def _keyed(packed: Any) -> dict[Any, Any]:
    """A Lua table as MessagePack wrote it: a map, or an array when its keys were 1..n."""
    if isinstance(packed, list):
        return {i: v for i, v in enumerate(packed, start=1)}
    return cast(dict[Any, Any], packed)


def _unpack(raw: bytes) -> list[Any]:
    return cast(list[Any], msgpack.unpackb(raw, strict_map_key=False))


def _fetched_unless_owed(entry: list[Any] | None) -> float | None:
    """When a network last answered, None when never or not since an admin's refresh."""
    if entry is None or (len(entry) > 2 and "o" in _keyed(entry[2])):
        return None
    return _time(entry[1])


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None


class Store:
    """Typed operations on flares' Redis data; each method is one or a few round trips."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._track = redis.register_script(_TRACK)
        self._claim = redis.register_script(_CLAIM)
        self._merge = redis.register_script(STATS_LUA + _MERGE_BODY)
        self._failed = redis.register_script(_FAILED)
        self._force = redis.register_script(_FORCE)
        self._force_bucket = redis.register_script(_FORCE_BUCKET)
        self._name = redis.register_script(_NAME)
        self._throttle = redis.register_script(_THROTTLE)
        # Numbers are never reassigned, so a process may keep what it has learned of them.
        self._codes: dict[str, int] = {}
        self._names: dict[int, str] = {}

    async def _codes_for(self, names: Sequence[str]) -> list[int]:
        missing = [n for n in dict.fromkeys(names) if n not in self._codes]
        if missing:
            codes: list[int] = await self._name(keys=[NAMES], args=missing)
            for name, code in zip(missing, codes, strict=True):
                self._codes[name], self._names[code] = code, name
        return [self._codes[n] for n in names]

    async def _name_of(self, code: int) -> str:
        if code not in self._names:
            # Another process named it: learn every number at once.
            table = cast(dict[str, str], await self.redis.hgetall(NAMES))
            for name, number in table.items():
                self._codes[name], self._names[int(number)] = int(number), name
        return self._names.get(code, f"#{code}")

    async def _record(self, url: str, packed: list[Any]) -> UrlRecord:
        networks: dict[str, NetworkRecord] = {}
        for code, entry in _keyed(packed[_NETWORKS]).items():
            count, fetched = entry[0], entry[1]
            extra = _keyed(entry[2]) if len(entry) > 2 else {}
            parts = {await self._name_of(c): v for c, v in _keyed(extra.get("p", {})).items()}
            networks[await self._name_of(code)] = NetworkRecord(
                count=count if count >= 0 else None,
                seen=extra.get("s", count) if count >= 0 else None,
                fetched_at=_time(fetched),
                failed_at=_time(extra.get("x", 0)),
                parts=dict(sorted(parts.items())),
            )
        return UrlRecord(
            url=url,
            tracked_at=float(packed[_TRACKED]),
            updated_at=_time(packed[_UPDATED]),
            networks=dict(sorted(networks.items())),
        )

    async def _read(self, ids: Sequence[str]) -> list[list[Any] | None]:
        """The packed records of URL ids, None for those not tracked, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for ident in ids:
                key, _ = record_location(ident, is_id=True)
                pipe.execute_command("HGET", key, ident, **{NEVER_DECODE: True})
            raws: list[bytes | None] = await pipe.execute()
        return [_unpack(raw) if raw is not None else None for raw in raws]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def track(self, url: str, now: float) -> bool:
        """Start tracking a canonical URL, due at once; False if it was already tracked."""
        return await self.track_many([url], now) == 1

    async def track_many(self, urls: Iterable[str], now: float) -> int:
        """Track many canonical URLs in one round trip; returns how many were new."""
        urls = list(urls)
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                key, ident = record_location(url)
                args: list[str | int] = [ident, url, _seconds(now)]
                await self._track(keys=[key, DUE], args=args, client=pipe)
            created: list[int] = await pipe.execute()
        for url, result in zip(urls, created, strict=True):
            if result < 0:
                raise UrlIdCollision(url)
        return sum(created)

    async def get(self, url: str) -> UrlRecord | None:
        [packed] = await self._read([url_id(url)])
        if packed is None or packed[_URL] != url:
            return None
        return await self._record(url, packed)

    async def due_at(self, url: str) -> float | None:
        """When a tracked URL is next due (or its lease ends), None when not tracked."""
        score = await self.redis.zscore(DUE, url_id(url))
        return float(score) if score is not None else None

    async def tracked_count(self) -> int:
        return int(await self.redis.zcard(DUE))

    async def claim_due(
        self, now: float, limit: int, lease_until: float, networks: Sequence[str] = ()
    ) -> dict[str, Claim]:
        """Lease up to `limit` due URLs; for each, when it was first tracked and when each of
        `networks` last answered for it since the last forced refresh."""
        ids: list[str] = await self._claim(keys=[DUE], args=[repr(now), limit, repr(lease_until)])
        if not ids:
            return {}
        codes = await self._codes_for(networks)
        records = await self._read(ids)
        orphans = [i for i, packed in zip(ids, records, strict=True) if packed is None]
        if orphans:
            # A queue entry whose record is gone would otherwise be leased again forever.
            await self.redis.zrem(DUE, *orphans)
        claims: dict[str, Claim] = {}
        for packed in records:
            if packed is None:
                continue
            entries = _keyed(packed[_NETWORKS])
            fetched = {
                name: _fetched_unless_owed(entries.get(code))
                for name, code in zip(networks, codes, strict=True)
            }
            claims[packed[_URL]] = Claim(float(packed[_TRACKED]), fetched)
        return claims

    async def merge_counts(
        self, network: str, counts: Mapping[str, int | Observation], now: float
    ) -> set[str]:
        """Record fetched counts (the served count only ever rises); return the URLs whose count
        rose above an earlier one (a first count is not a move)."""
        if not counts:
            return set()
        observations = {
            url: seen if isinstance(seen, Observation) else Observation(seen)
            for url, seen in counts.items()
        }
        part_names = sorted({p for obs in observations.values() for p in obs.parts})
        [code, *part_codes] = await self._codes_for([network, *part_names])
        part_code = dict(zip(part_names, part_codes, strict=True))
        today = date.fromtimestamp(now).toordinal() - _EPOCH_DAY
        keys: list[str] = []
        args: list[str | int] = [code, _seconds(now), today - DAY_WINDOW]
        for url, obs in observations.items():
            key, ident = record_location(url)
            keys.append(key)
            args += [ident, _capped(obs.count), len(obs.parts)]
            for part, value in obs.parts.items():
                args += [part_code[part], _capped(value)]
            args.append(len(obs.days))
            for day, value in obs.days.items():
                args += [date.fromisoformat(day).toordinal() - _EPOCH_DAY, _capped(value)]
        rose: list[int] = await self._merge(keys=[*keys, stats_key(network)], args=args)
        return {url for url, up in zip(observations, rose, strict=True) if up == 1}

    async def refresh(self, urls: Iterable[str], now: float) -> int:
        """Make tracked URLs due now for every provider; returns how many were tracked."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                key, ident = record_location(url)
                args: list[str | int] = [ident, _seconds(now)]
                await self._force(keys=[key, DUE], args=args, client=pipe)
            done: list[int] = await pipe.execute()
        return sum(done)

    async def refresh_domain(self, domain: str, now: float) -> int:
        """Make every tracked URL on `domain` and its subdomains due now."""
        total = 0
        keys = bucket_keys()
        # A bucket at a time, in pipelines, so that Redis never runs one long script.
        for start in range(0, len(keys), 1024):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys[start : start + 1024]:
                    args: list[str | int] = [domain, _seconds(now)]
                    await self._force_bucket(keys=[key, DUE], args=args, client=pipe)
                counts: list[int] = await pipe.execute()
            total += sum(counts)
        return total

    async def refresh_all(self, now: float) -> int:
        """Make every tracked URL due now."""
        return await self.refresh_domain("", now)

    async def mark_failed(self, network: str, urls: Iterable[str], now: float) -> None:
        """Note a failed fetch; no count changes."""
        locations = [record_location(url) for url in urls]
        if not locations:
            return
        [code] = await self._codes_for([network])
        keys = [key for key, _ in locations]
        await self._failed(keys=keys, args=[code, _seconds(now), *(i for _, i in locations)])

    async def reschedule(self, due: Mapping[str, float]) -> None:
        """Set the next due time of URLs that are still tracked."""
        if due:
            await self.redis.zadd(DUE, {url_id(u): t for u, t in due.items()}, xx=True)

    async def throttle(self, name: str, until: float, now: float) -> None:
        """Stop every process calling this provider until `until`."""
        await self._throttle(keys=[provider_key(name)], args=[repr(until), repr(now)])

    async def reject(self, name: str, fingerprint: str, reason: str) -> None:
        """Remember that the network refused these credentials; they are not used again."""
        await self.redis.hset(
            provider_key(name), mapping={"rejected": fingerprint, "rejected_reason": reason}
        )

    async def providers(self, names: Sequence[str]) -> dict[str, ProviderRecord]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(provider_key(name))
            raws: list[dict[str, str]] = await pipe.execute()
        return {
            name: ProviderRecord(
                last_success_at=_float(raw.get("last_success_at")),
                last_failure_at=_float(raw.get("last_failure_at")),
                last_error=raw.get("last_error"),
                last_error_kind=raw.get("last_error_kind") or None,
                last_error_status=int(raw["last_error_status"])
                if raw.get("last_error_status")
                else None,
                ok_since=_float(raw.get("ok_since")),
                failing_since=_float(raw.get("failing_since")),
                throttled_since=_float(raw.get("throttled_since")),
                consecutive_failures=int(raw.get("consecutive_failures", 0)),
                throttled_until=_float(raw.get("throttled_until")),
                rejected=raw.get("rejected"),
                rejected_reason=raw.get("rejected_reason"),
                breaker_until=_float(raw.get("breaker_until")),
                breaker_since=_float(raw.get("breaker_since")),
            )
            for name, raw in zip(names, raws, strict=True)
        }

    async def stats(self, names: Sequence[str], now: float) -> dict[str, ProviderStats]:
        """Each provider's request tallies: the last hour's and since the start."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(stats_key(name))
            raws: list[dict[str, str]] = await pipe.execute()
        return {name: _provider_stats(raw, now) for name, raw in zip(names, raws, strict=True)}

    async def queue(self, now: float) -> tuple[int, float | None]:
        """URLs due now, and since when the longest-waiting of them has been due."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(DUE, "-inf", now)
            pipe.zrange(DUE, 0, 0, withscores=True)
            due, first = await pipe.execute()
        oldest = float(first[0][1]) if first and first[0][1] <= now else None
        return int(due), oldest

    async def beat(self, ttl: float) -> None:
        """Say that a scheduler is alive for the next `ttl` seconds."""
        await self.redis.set(HEARTBEAT, "1", px=max(1, int(ttl * 1000)))

    async def scheduler_alive(self) -> bool:
        return bool(await self.redis.exists(HEARTBEAT))
