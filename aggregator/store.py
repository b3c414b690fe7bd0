"""The Redis data model; the only module that knows key names and how a record is packed.

Keys (prefix `flares:`):
- `due`                  sorted set: URL id -> unix time it is next due (a claim leases it by
                         pushing the score forward, so a dead worker's URLs come due again); a
                         URL is tracked while it is in here: an untracked one keeps its record
- `r:<bucket>`           hash: URL id -> the URL's record, packed with MessagePack (see below);
                         URLs are spread over BUCKETS hashes by their id
- `h:<bucket>`           hash: URL id -> the URL's history (see below), in the hash of the
                         record's bucket number: apart, so that the records stay small
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
- `v:<id>:<number>:<day>`  HyperLogLog of the salted visitor hashes that clicked a URL's share
                         link for one network (by name number) on one day (UTC, since 1970),
                         expiring after CLICK_TTL; nothing else about a visitor is stored
- `salt:<day>`           string with a TTL: the random salt of that day's visitor hashes, when
                         FLARES_SHARE_SALT is not set
- `audit`                stream, capped near AUDIT_LENGTH entries: one per admin write, with
                         time, action, target, detail and who (a fingerprint of the admin key)

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
the counts of each day (days since 1970) plus `b`, the sum of the days folded out of the window,
and `k` the share clicks counted through flares' own links (one per visitor a day).
`f` is the baseline an admin set or imported, the count's floor: with one, a network that never
answered (a retired one) has a count all the same.
Flags rather than time comparisons keep whole seconds exact enough: a failure and a success, or
a refresh and a fetch, may fall in the same second.

A URL's history is a MessagePack map from a network's number to `[daily, hourly]` (hourly left
out when empty), each series `[points, t, c, n]`: `points` a byte string of points oldest first,
each a UTC day (or hour) since 1970 and the served count at its end, both as the difference
from the point before (the first from 0) in varints (7 bits a byte, low first; the days'
doubled, plus one when the count fell), so that a point mostly takes two bytes; `t` and `c` the
newest point's day and count and `n` its length in bytes, so that a write need not decode the
rest. The script that raises a count writes its point, replacing that day's or hour's: a point
only where the count changed, and a day without one kept the count of the point before it.
Daily points reach back `history_days` (the newest point older than that moves to the window's
first day, keeping its value); hourly points are written during the first HOURLY_SECONDS a URL
is tracked, and dropped once that day has left the daily window. Dropping a URL's data means
deleting its field in both hashes.

The provider keys share a hash tag so that the gate's scripts touch one cluster slot.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
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
AUDIT = PREFIX + "audit"
# Trimmed approximately (whole listpack nodes at a time), which keeps XADD cheap.
AUDIT_LENGTH = 10_000
NAMES = PREFIX + "names"
# Fixed for the life of a data set: a URL's bucket is derived from its id. 8192 buckets keep
# every bucket a listpack up to about 4 million URLs with 512 entries a bucket.
BUCKETS = 8192
# Server settings under which every bucket stays a listpack; records run to a few hundred bytes,
# above Redis's default limit of 64 (the README says how to set these on your own server).
COMPACT_HASHES = {"hash-max-listpack-entries": 512, "hash-max-listpack-value": 1024}

# A record's fields and their defaults; the Lua below indexes the same array from 1.
_URL, _TRACKED, _UPDATED, _NETWORKS = range(4)

# An untracked URL kept its record: tracking it again only puts it back in the queue.
_TRACK = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cmsgpack.unpack(raw)[1] ~= ARGV[2] then return -1 end
  return redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
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

# One call merges a whole batch of n URLs of one network: KEYS[i] is the bucket of the i-th URL
# and KEYS[n + i] its history's, whose arguments follow the shared ones (network number, now,
# day cutoff, history days) as: id, count, #parts, (part, value)..., #days, (day, value)...
# The last key is the provider's stats, which learn how many URLs that had a count the network
# now answered 0 for (how a network's shutdown looks from outside).
# Never lower a served count: the network's value is kept as `s` when lower, while the count
# only rises. Day buckets replace the same day's earlier value (never add to it); days older
# than the cutoff are folded into `b`, and an incoming day older than the cutoff is ignored
# because it was folded in already. Returns per URL -1 untracked, 0 no rise, 1 rose, 2 first.
_MERGE_BODY = """
local code, now, cutoff = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local days, n = tonumber(ARGV[4]), (#KEYS - 1) / 2
local stats = KEYS[#KEYS]
local results, had, zeroed = {}, 0, 0
local i = 5
for k = 1, n do
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
      history_add(KEYS[n + k], id, code, rec[2], new, now, days)
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

# Daily history points a URL keeps per network by default (over a year, so that a year ago can
# be compared), and how long after a URL is first tracked hourly points are kept as well.
HISTORY_DAYS = 400
HOURLY_SECONDS = 48 * 3600

# Lua functions for the scripts that raise a count: its point in the URL's history. A rise reads
# and writes only the newest and oldest points of a series, whatever its length: decoding a long
# series into Lua numbers would cost close to a millisecond, with Redis blocked meanwhile.
HISTORY_LUA = """
-- Built by concatenation, not from a table: this runs for every point written.
local function varint(n)
  local s = ''
  while n >= 128 do
    s = s .. string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  return s .. string.char(n)
end

-- The distance doubled carries the change's sign: only an admin's reset lowers a count, and a
-- gap of days is small, where a change of count is often above 63.
local function point(dt, dc)
  return varint(2 * dt + (dc < 0 and 1 or 0)) .. varint(math.abs(dc))
end

-- The varint at byte p of s, and the byte after it.
local function read(s, p)
  local n, scale, b = 0, 1, 128
  while b >= 128 do
    b = string.byte(s, p)
    n, scale, p = n + b % 128 * scale, scale * 128, p + 1
  end
  return n, p
end

local function read_point(s, p)
  local g, m
  g, p = read(s, p)
  m, p = read(s, p)
  return math.floor(g / 2), g % 2 == 1 and -m or m, p
end

-- The series `s` ({points, newest t, its count, its length in bytes}, or nil) with (t, c) as its
-- newest point, replacing the newest one at t; of the points at or before `floor` only the
-- newest stays, moved to `floor`, where its count still held.
local function history_put(s, t, c, floor)
  local bytes, lt, lc, len = '', 0, 0, 0
  if s then bytes, lt, lc, len = s[1], s[2], s[3], s[4] end
  if #bytes > 0 and t <= lt then
    -- A worker whose clock lags writes into the newest point too, never before it. (c - lc)
    -- first: near 2^53 a sum of two counts would lose its last digit.
    local dt, dc = read_point(bytes, #bytes - len + 1)
    local p = point(dt, dc + (c - lc))
    bytes, len, t = string.sub(bytes, 1, #bytes - len) .. p, #p, lt
  else
    local p = point(t - lt, c - lc)
    bytes, len = bytes .. p, #p
  end
  local t1, c1, at = read_point(bytes, 1)
  if t1 < floor then
    while at <= #bytes do
      local dt, dc, after = read_point(bytes, at)
      if t1 + dt > floor then break end
      t1, c1, at = t1 + dt, c1 + dc, after
    end
    local head = point(floor, c1)
    if at > #bytes then
      bytes, len = head, #head
    else
      -- The point after the head keeps its count's bytes; only its distance changes.
      local g, after = read(bytes, at)
      local gap = varint(g - 2 * (floor - t1))
      if select(2, read(bytes, after)) > #bytes then len = #gap + #bytes - after + 1 end
      bytes = head .. gap .. string.sub(bytes, after)
    end
  end
  return {bytes, t, c, len}
end

-- A count that rose, into the history of URL `id` (tracked since `tracked`) in hash `key`: the
-- day's point and, in the URL's first HOURLY_SECONDS, the hour's.
local function history_add(key, id, code, tracked, count, now, days)
  local raw = redis.call('HGET', key, id)
  local h = raw and cmsgpack.unpack(raw) or {}
  local s = h[code] or {}
  local today = math.floor(now / 86400)
  local floor = today - days + 1
  s[1] = history_put(s[1], today, count, floor)
  if now < tracked + HOURLY_SECONDS then
    s[2] = history_put(s[2], math.floor(now / 3600), count, 0)
  elseif tracked < floor * 86400 then
    s[2] = nil
  end
  h[code] = s
  redis.call('HSET', key, id, cmsgpack.pack(h))
end
""".replace("HOURLY_SECONDS", str(HOURLY_SECONDS))

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
  -- An untracked URL keeps its record, but nothing fetches it.
  if not redis.call('ZSCORE', KEYS[2], id) then return 0 end
  for _, e in pairs(rec[4]) do
    e[3] = e[3] or {}
    e[3].o = 1
  end
  redis.call('HSET', bucket, id, cmsgpack.pack(rec))
  redis.call('ZADD', KEYS[2], 'XX', 'LT', now, id)
  return 1
end
"""
_FORCE = (
    _FORCE_BODY
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
return force(KEYS[1], ARGV[1], cmsgpack.unpack(raw), tonumber(ARGV[2]))
"""
)

# Whether a URL's host is the domain or one of its subdomains ('' takes every URL). Canonical
# URLs are `scheme://host[:port]/...` with a lower-case host, IPv6 in brackets.
_ON_DOMAIN = """
local function on_domain(url, domain)
  if domain == '' then return true end
  local authority = string.match(url, '^[^:]+://([^/?#]*)') or ''
  local host = string.match(authority, '^%b[]') or string.match(authority, '^[^:]*')
  return host == domain
    or (#host > #domain and string.sub(host, -#domain - 1) == '.' .. domain)
end
"""

# Every URL of one bucket on a domain.
_FORCE_BUCKET = (
    _FORCE_BODY
    + _ON_DOMAIN
    + """
local domain, now, n = ARGV[1], tonumber(ARGV[2]), 0
local items = redis.call('HGETALL', KEYS[1])
for j = 1, #items, 2 do
  local rec = cmsgpack.unpack(items[j + 1])
  if on_domain(rec[1], domain) then
    n = n + force(KEYS[1], items[j], rec, now)
  end
end
return n
"""
)

# The packed records of one bucket's URLs on a domain, tracked or not; filtered in Redis so
# that only a site's own records cross the network.
_SITE_BUCKET = (
    _ON_DOMAIN
    + """
local found = {}
local items = redis.call('HGETALL', KEYS[1])
for j = 2, #items, 2 do
  if on_domain(cmsgpack.unpack(items[j])[1], ARGV[1]) then found[#found + 1] = items[j] end
end
return found
"""
)

# Baselines: KEYS[k] is the bucket of the k-th row, whose arguments follow the reset flag as: id,
# url, network number, value. A set raises the floor and the count to the value and never lowers
# either (a floor of 0 says nothing); a reset sets both, the one way a count goes down. What the
# network said stays in `s` while the count differs (a reset may go below it, until the next
# fetch). Per row: -1 untracked, 0 no change, 1 changed.
_BASELINE = """
local reset = ARGV[1] == '1'
local results = {}
for k = 1, #KEYS do
  local i = k * 4 - 2
  local id, code, v = ARGV[i], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local raw = redis.call('HGET', KEYS[k], id)
  local rec = raw and cmsgpack.unpack(raw)
  if not rec or rec[1] ~= ARGV[i + 1] then
    results[k] = -1
  else
    local e = rec[4][code] or {-1, 0}
    local x = e[3] or {}
    local floor, count = v, v
    if not reset then
      floor = math.max(x.f or 0, v)
      count = (floor > 0 and floor > e[1]) and floor or e[1]
    end
    if floor == (x.f or 0) and count == e[1] then
      results[k] = 0
    else
      if e[2] > 0 then
        local seen = x.s or e[1]
        x.s = seen ~= count and seen or nil
      end
      e[1] = count
      x.f = floor > 0 and floor or nil
      e[3] = next(x) and x or nil
      rec[4][code] = e
      redis.call('HSET', KEYS[k], id, cmsgpack.pack(rec))
      results[k] = 1
    end
  end
end
return results
"""

# Returns -1 no record, else whether the URL was in the queue.
_UNTRACK = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw or cmsgpack.unpack(raw)[1] ~= ARGV[2] then return -1 end
local queued = redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return queued
"""

# A throttle that extends one still running keeps its start.
_THROTTLE = """
if tonumber(redis.call('HGET', KEYS[1], 'throttled_until') or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'throttled_since', ARGV[2])
end
redis.call('HSET', KEYS[1], 'throttled_until', ARGV[1])
"""

# A share click: KEYS are the URL's bucket and the day's visitors of its page and network. A
# visitor the HyperLogLog already holds changes no register, so PFADD's answer is the test (a new
# one that changes none is missed: rare below thousands a day, and a click count can miss a
# little where a set of every hash would grow without bound); one script keeps test and count
# together. Returns -1 untracked, 0 seen today, 1 counted.
_CLICK = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return -1 end
local rec = cmsgpack.unpack(raw)
if rec[1] ~= ARGV[2] then return -1 end
if redis.call('PFADD', KEYS[2], ARGV[4]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[5])
local code = tonumber(ARGV[3])
local e = rec[4][code] or {-1, 0}
e[3] = e[3] or {}
e[3].k = (e[3].k or 0) + 1
rec[4][code] = e
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(rec))
return 1
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
# A day's visitors (and salt) outlive the day by one, for processes whose clocks lag; then they
# go, so memory holds only the pages shared in the last two days.
CLICK_TTL = 2 * 86_400


def url_id(url: str) -> str:
    """The short, fixed-length name of a URL in the due queue and its bucket."""
    digest = hashlib.blake2b(url.encode(), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _located(kind: str, url_or_id: str, is_id: bool) -> tuple[str, str]:
    ident = url_or_id if is_id else url_id(url_or_id)
    raw = base64.urlsafe_b64decode(ident + "=")
    return f"{PREFIX}{kind}:{int.from_bytes(raw[:4], 'big') % BUCKETS}", ident


def record_location(url_or_id: str, *, is_id: bool = False) -> tuple[str, str]:
    """The bucket key and field that hold a URL's record."""
    return _located("r", url_or_id, is_id)


def history_location(url_or_id: str, *, is_id: bool = False) -> tuple[str, str]:
    """The bucket key and field that hold a URL's history (the record's bucket number)."""
    return _located("h", url_or_id, is_id)


def bucket_keys() -> list[str]:
    return [f"{PREFIX}r:{n}" for n in range(BUCKETS)]


def history_keys() -> list[str]:
    return [f"{PREFIX}h:{n}" for n in range(BUCKETS)]


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
    # Share clicks counted through flares' own links.
    clicks: int = 0
    # The floor an admin set or imported; the count is never below it.
    baseline: int | None = None


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
class Series:
    """One network's history of a URL, oldest first: (day, count) and (hour, count) points,
    counted in UTC since 1970, where the served count changed (it held until the next one)."""

    daily: list[tuple[int, int]]
    hourly: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class AuditEntry:
    """One admin write; `who` is a fingerprint of the key used, never the key."""

    id: str
    time: float
    action: str
    target: str
    detail: str
    who: str


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


def _varints(data: bytes) -> list[int]:
    numbers: list[int] = []
    n = shift = 0
    for byte in data:
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            numbers.append(n)
            n = shift = 0
    return numbers


def _points(series: Sequence[Any]) -> list[tuple[int, int]]:
    """A history series' points from its bytes (see the module's docstring)."""
    numbers = _varints(series[0])
    points: list[tuple[int, int]] = []
    t = c = 0
    for gap, change in zip(numbers[::2], numbers[1::2], strict=True):
        t, c = t + (gap >> 1), c + (-change if gap & 1 else change)
        points.append((t, c))
    return points


def _fetched_unless_owed(entry: list[Any] | None) -> float | None:
    """When a network last answered, None when never or not since an admin's refresh."""
    if entry is None or (len(entry) > 2 and "o" in _keyed(entry[2])):
        return None
    return _time(entry[1])


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None


class Store:
    """Typed operations on flares' Redis data; each method is one or a few round trips."""

    def __init__(self, redis: Redis, *, history_days: int = HISTORY_DAYS) -> None:
        self.redis = redis
        self.history_days = history_days
        self._track = redis.register_script(_TRACK)
        self._claim = redis.register_script(_CLAIM)
        self._merge = redis.register_script(STATS_LUA + HISTORY_LUA + _MERGE_BODY)
        self._failed = redis.register_script(_FAILED)
        self._force = redis.register_script(_FORCE)
        self._force_bucket = redis.register_script(_FORCE_BUCKET)
        self._name = redis.register_script(_NAME)
        self._throttle = redis.register_script(_THROTTLE)
        self._click = redis.register_script(_CLICK)
        self._baseline = redis.register_script(_BASELINE)
        self._untrack = redis.register_script(_UNTRACK)
        # Numbers are never reassigned, so a process may keep what it has learned of them.
        self._codes: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._salt: tuple[int, str] | None = None

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
                # A count from a baseline alone is nothing the network said.
                seen=extra.get("s", count) if count >= 0 and fetched else None,
                fetched_at=_time(fetched),
                failed_at=_time(extra.get("x", 0)),
                parts=dict(sorted(parts.items())),
                clicks=extra.get("k", 0),
                baseline=extra.get("f"),
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
        """Track many canonical URLs in one round trip; returns how many were not tracked (new,
        or untracked with their record kept)."""
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
        return (await self.get_many([url]))[url]

    async def get_many(self, urls: Sequence[str]) -> dict[str, UrlRecord | None]:
        """The records of many URLs in one round trip; None for those not tracked."""
        packed = await self._read([url_id(url) for url in urls])
        return {
            url: await self._record(url, p) if p is not None and p[_URL] == url else None
            for url, p in zip(urls, packed, strict=True)
        }

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
        args: list[str | int] = [code, _seconds(now), today - DAY_WINDOW, self.history_days]
        for url, obs in observations.items():
            key, ident = record_location(url)
            keys.append(key)
            args += [ident, _capped(obs.count), len(obs.parts)]
            for part, value in obs.parts.items():
                args += [part_code[part], _capped(value)]
            args.append(len(obs.days))
            for day, value in obs.days.items():
                args += [date.fromisoformat(day).toordinal() - _EPOCH_DAY, _capped(value)]
        histories = [history_location(url)[0] for url in observations]
        rose: list[int] = await self._merge(keys=[*keys, *histories, stats_key(network)], args=args)
        return {url for url, up in zip(observations, rose, strict=True) if up == 1}

    async def history(self, url: str) -> dict[str, Series]:
        """Each network's history of a URL, by name; empty for one without (or not tracked)."""
        key, ident = history_location(url)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.execute_command("HGET", key, ident, **{NEVER_DECODE: True})
            [raw] = await pipe.execute()
        if raw is None:
            return {}
        found: dict[str, Series] = {}
        # Raw: a series' points are bytes, not text.
        packed = msgpack.unpackb(raw, raw=True, strict_map_key=False)
        for code, (daily, *hourly) in _keyed(packed).items():
            found[await self._name_of(code)] = Series(
                daily=_points(daily), hourly=_points(hourly[0]) if hourly else []
            )
        return dict(sorted(found.items()))

    async def share_salt(self, day: int) -> str:
        """The day's random salt for visitor hashes: the first process to ask creates it."""
        if self._salt is None or self._salt[0] != day:
            key = f"{PREFIX}salt:{day}"
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(key, secrets.token_hex(32), nx=True, ex=CLICK_TTL)
                pipe.get(key)
                _, salt = await pipe.execute()
            self._salt = (day, salt)
        return self._salt[1]

    async def count_click(self, url: str, network: str, visitor: str, day: int) -> bool:
        """Count a share click on a tracked URL unless this visitor was counted for its page and
        network that day; whether it counted. `visitor` is a salted hash, never an address."""
        key, ident = record_location(url)
        [code] = await self._codes_for([network])
        visitors = f"{PREFIX}v:{ident}:{code}:{day}"
        args: list[str | int] = [ident, url, code, visitor, CLICK_TTL]
        counted: int = await self._click(keys=[key, visitors], args=args)
        return counted == 1

    async def untrack(self, url: str, *, purge: bool = False) -> bool | None:
        """Stop fetching a URL, its record and counts kept unless `purge`; whether it was
        tracked, None when there is no record."""
        key, ident = record_location(url)
        args: list[str | int] = [ident, url, int(purge)]
        keys = [key, DUE, history_location(url)[0]]
        queued: int = await self._untrack(keys=keys, args=args)
        return None if queued < 0 else bool(queued)

    async def set_baselines(
        self, rows: Sequence[tuple[str, str, int]], *, reset: bool = False
    ) -> list[bool | None]:
        """Set (url, network, value) baselines: the count rises to the value, or with `reset`
        becomes it; per row whether anything changed, None for an untracked URL."""
        if not rows:
            return []
        codes = await self._codes_for([network for _, network, _ in rows])
        keys: list[str] = []
        args: list[str | int] = [int(reset)]
        for (url, _, value), code in zip(rows, codes, strict=True):
            key, ident = record_location(url)
            keys.append(key)
            args += [ident, url, code, _capped(value)]
        changed: list[int] = await self._baseline(keys=keys, args=args)
        return [None if c < 0 else bool(c) for c in changed]

    async def audit(self, now: float, action: str, target: str, detail: str, who: str) -> None:
        """Append an admin write to the audit log, dropping the oldest beyond AUDIT_LENGTH."""
        await self.redis.xadd(
            AUDIT,
            {"time": now, "action": action, "target": target, "detail": detail, "who": who},
            maxlen=AUDIT_LENGTH,
            approximate=True,
        )

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` audit entries, newest first."""
        rows = cast(
            list[tuple[str, dict[str, str]]], await self.redis.xrevrange(AUDIT, count=limit)
        )
        return [
            AuditEntry(
                id=ident,
                time=float(f["time"]),
                action=f["action"],
                target=f["target"],
                detail=f.get("detail", ""),
                who=f.get("who", ""),
            )
            for ident, f in rows
        ]

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

    async def site(self, domain: str) -> list[UrlRecord]:
        """Every record of the pages on a domain and its subdomains: a walk over all buckets,
        so O(tracked URLs) on the server; callers cache the answer."""
        sha = await self.redis.script_load(_SITE_BUCKET)
        found: list[UrlRecord] = []
        keys = bucket_keys()
        for start in range(0, len(keys), 1024):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys[start : start + 1024]:
                    pipe.execute_command("EVALSHA", sha, 1, key, domain, **{NEVER_DECODE: True})
                buckets: list[list[bytes]] = await pipe.execute()
            for raw in (r for bucket in buckets for r in bucket):
                packed = _unpack(raw)
                found.append(await self._record(packed[_URL], packed))
        return found

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

    async def freshness(self, now: float, grace: float) -> tuple[int, int]:
        """Tracked URLs not overdue by more than `grace` seconds, and all tracked URLs."""
        async with self.redis.pipeline(transaction=False) as pipe:
            # A leased URL's score is its lease's end: one being fetched is never overdue.
            pipe.zcount(DUE, "-inf", f"({now - grace!r}")
            pipe.zcard(DUE)
            overdue, tracked = await pipe.execute()
        return int(tracked) - int(overdue), int(tracked)

    async def beat(self, ttl: float) -> None:
        """Say that a scheduler is alive for the next `ttl` seconds."""
        await self.redis.set(HEARTBEAT, "1", px=max(1, int(ttl * 1000)))

    async def scheduler_alive(self) -> bool:
        return bool(await self.redis.exists(HEARTBEAT))
