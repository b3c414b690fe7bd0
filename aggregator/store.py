"""The Redis data model; the only module that knows key names and how a record is packed.

Keys (prefix `flares:`; `{s}` is the hash tag of a bucket's shard, see below):
- `due:{s}`              sorted set: URL id -> unix time it is next due (a claim leases it by
                         pushing the score forward, so a dead worker's URLs come due again), for
                         the URLs of the shard's buckets; a URL is tracked while it is in here:
                         an untracked one keeps its record
- `r:{s}<bucket>`        hash: URL id -> the URL's record, packed with MessagePack (see below);
                         URLs are spread over BUCKETS hashes by their id
- `h:{s}<bucket>`        hash: URL id -> the URL's history (see below), in the hash of the
                         record's bucket number: apart, so that the records stay small
- `a:{s}<bucket>`        hash: alias URL id -> the page URL it is an alias of (the alias's
                         bucket number), so that no URL is a page's alias and counted elsewhere,
                         and so that a read of an alias finds its page
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
- `v:{s}:<id>:<number>:<day>`  HyperLogLog of the salted visitor hashes that clicked a URL's share
                         link for one network (by name number) on one day (UTC, since 1970),
                         expiring after CLICK_TTL; nothing else about a visitor is stored
- `salt:<day>`           string with a TTL: the random salt of that day's visitor hashes, when
                         FLARES_SHARE_SALT is not set
- `audit`                stream, capped near AUDIT_LENGTH entries: one per admin write, with
                         time, action, target, detail and who (a fingerprint of the admin key)
- `new:c:<client>:<minute>`, `new:d:<domain>:<minute>`  strings with a TTL: how many URLs a
                         client (a salted hash of its address, never the address) and a domain
                         had tracked by reads in that minute (since 1970)
- `added:<domain>`       string: how many URLs reads have tracked on the domain, in all

A URL's id is 8 bytes of its BLAKE2b hash in base64url (11 characters): the URL itself is
stored once, inside its record, and the due queue holds only ids. Small hashes of short-keyed
records are what keep a tracked URL under 300 bytes of Redis memory (bench/memory.py): Redis
packs a hash of at most `hash-max-listpack-entries` fields, each at most
`hash-max-listpack-value` bytes, into one flat listpack, without a per-field allocation.

A record is the array `[url, tracked_at, updated_at, networks, aliases]`, times in whole seconds
(0: never), `networks` a map from a name's number to `[count, fetched_at, extra]`: count -1
until the network first answers, and `extra` (left out when empty) a map with `x` the time of
the last failure since the last success, `o` set when an admin forced a refresh that this
network has not answered yet, `s` the value last seen when lower than the count, `p` the parts
the network reported (by name number), and for networks that report a recent window only, `d`
the counts of each day (days since 1970) plus `b`, the sum of the days folded out of the window,
and `k` the share clicks counted through flares' own links (one per visitor a day).
`f` is the baseline an admin set or imported, the count's floor: with one, a network that never
answered (a retired one) has a count all the same.
`aliases` (left out when none) lists the URLs an admin said are this page (old permalinks, an
old domain): their counts are fetched and added to the page's, and each is in `a:<bucket>`.
Flags rather than time comparisons keep whole seconds exact enough: a failure and a success, or
a refresh and a fetch, may fall in the same second.

A URL's history is a MessagePack map from a network's number to `[daily, hourly]` (hourly left
out when empty), each series `[points, t, c, n]`: `points` a byte string of points oldest first,
each a UTC day (or hour) since 1970 and the served count at its end, both as the difference
from the point before (the first from 0) in varints (7 bits a byte, low first; the days'
doubled, plus one when the count fell), so that a point mostly takes two bytes; `t` and `c` the
newest point's day and count and `n` its length in bytes, so that a write need not decode the
rest. The script that raises a count (a merge, a baseline) writes its point, replacing that
day's or hour's: a point only where the count changed, and a day without one kept the count of
the point before it. Beside a network's count, under its number negated, is the series of its
share clicks never below its floor (what it shows when counted by clicks), written by the
scripts that count a click and set a baseline.
Daily points reach back `history_days` (the newest point older than that moves to the window's
first day, keeping its value); hourly points are written during the first HOURLY_SECONDS a URL
is tracked, and dropped once that day has left the daily window. Dropping a URL's data means
deleting its field in both hashes.

On a cluster every script and multi-key command touches one hash slot, and the same code runs
on one server. Bucket n belongs to shard n % SHARDS, and a shard's keys (its record, history and
alias buckets, its due queue, its URLs' visitors) share its hash tag: one of SHARDS short strings
whose slots lie in evenly spaced ranges, so that a cluster's masters hold about as many shards
each. A batch over many URLs runs as a script per shard, pipelined, on a cluster; a single
server, which has no slots, takes it in one call (Store._script_groups). Workers claim from the
shards in turn, each process starting at a random one, so that no shard or node is a hot spot.
The provider keys share `{provider:<name>}` so that the gate's scripts touch one slot; a merge
records its zero-drop tallies there apart. `names` is read and written alone. In cluster mode a
write of counts or tracked URLs is followed by WAIT for one replica on each node it wrote to
(NotReplicated when none acknowledges it), so that a failover loses no acknowledged count.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
import string
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal, cast

import msgpack
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.client import NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import NoScriptError, RedisError, SlotNotCoveredError
from redis.exceptions import TimeoutError as RedisTimeoutError

from providers.base import Observation

PREFIX = "flares:"
HEARTBEAT = PREFIX + "heartbeat"
AUDIT = PREFIX + "audit"
# Trimmed approximately (whole listpack nodes at a time), which keeps XADD cheap.
AUDIT_LENGTH = 10_000
NAMES = PREFIX + "names"
# Fixed for the life of a data set: a URL's bucket is derived from its id. 8192 buckets keep
# every bucket a listpack up to about 4 million URLs with 512 entries a bucket.
BUCKETS = 8192
# Fixed for the life of a data set too: bucket n belongs to shard n % SHARDS, whose keys share
# its hash tag (one cluster slot), and which has a due queue of its own.
SHARDS = 64
# A single server or a cluster: one code path serves both.
Client = Redis | RedisCluster
# In cluster mode a write that must survive a failover waits this long for a replica's ack.
REPLICA_WAIT_MS = 2000
# Server settings under which every bucket stays a listpack; records run to a few hundred bytes,
# above Redis's default limit of 64 (the README says how to set these on your own server).
COMPACT_HASHES = {"hash-max-listpack-entries": 512, "hash-max-listpack-value": 1024}

# A record's fields and their defaults; the Lua below indexes the same array from 1.
_URL, _TRACKED, _UPDATED, _NETWORKS, _ALIASES = range(5)

# An untracked URL kept its record: tracking it again only puts it back in the queue.
_TRACK = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cmsgpack.unpack(raw)[1] ~= ARGV[2] then return -1 end
  return redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
end
-- An alias is counted with its page (KEYS[3] is its alias bucket): a record would count it twice.
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({ARGV[2], tonumber(ARGV[3]), 0, {}}))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

# Fields of many URLs (of one shard on a cluster): KEYS[i] is the bucket of ARGV[i]'s.
_READ = """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HGET', key, ARGV[i])
end
return found
"""

# One URL's record and, should it have none, the page it is an alias of (KEYS: its record and
# alias buckets, of one shard): a read of an alias costs one more round trip, any other none.
_FIND = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
return {raw, redis.call('HGET', KEYS[2], ARGV[1])}
"""

# Which of many URLs (of one shard on a cluster) are pages or aliases: KEYS[2i - 1] and KEYS[2i]
# are the record and alias buckets of ARGV[i]'s; 1 where either holds it.
_HELD = """
local held = {}
for i, id in ipairs(ARGV) do
  local page = redis.call('HEXISTS', KEYS[2 * i - 1], id)
  held[i] = math.max(page, redis.call('HEXISTS', KEYS[2 * i], id))
end
return held
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
# On a cluster every key is in one shard. The provider's stats, in a slot of their own, learn
# from the first two numbers returned how many URLs that had a count the network now answered 0
# for (how a network's shutdown looks from outside): _ZEROED records them.
# Never lower a served count: the network's value is kept as `s` when lower, while the count
# only rises. Day buckets replace the same day's earlier value (never add to it); days older
# than the cutoff are folded into `b`, and an incoming day older than the cutoff is ignored
# because it was folded in already. Returns those URLs that had a count, those answered 0, then
# per URL -1 untracked, 0 no rise, 1 rose, 2 first.
_MERGE_BODY = """
local code, now, cutoff = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local days, n = tonumber(ARGV[4]), #KEYS / 2
local results, had, zeroed = {0, 0}, 0, 0
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
    results[k + 2] = -1
  else
    local cur = e[1]
    results[k + 2] = 0
    if cur > 0 then
      had = had + 1
      if new == 0 then zeroed = zeroed + 1 end
    end
    if new > cur then
      results[k + 2] = cur >= 0 and 1 or 2
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
results[1], results[2] = had, zeroed
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

# Baselines: KEYS[k] is the bucket of the k-th of n rows and KEYS[n + k] its history's, whose
# arguments follow the reset flag, now and history days as: id, url, network number, value. A set
# raises the floor and the count to the value and never lowers either (a floor of 0 says
# nothing); a reset sets both, the one way a count goes down. A count that moved is a point in its
# history, as a merge writes it, and clicks whose floor moved them one in theirs (see _CLICK).
# What the network said stays in `s` while the count differs (a reset may go below it, until the
# next fetch). Per row: -1 untracked, 0 no change, 1 changed.
_BASELINE_BODY = """
local reset, now, days = ARGV[1] == '1', tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 2
local results = {}
for k = 1, n do
  local i = k * 4
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
      if count ~= e[1] then history_add(KEYS[n + k], id, code, rec[2], count, now, days) end
      local clicks = x.k or 0
      local shown = math.max(clicks, floor)
      if shown ~= math.max(clicks, x.f or 0) then
        history_add(KEYS[n + k], id, -code, rec[2], shown, now, days)
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

# Aliases take three scripts, each on the keys of one URL, so of one shard: an alias's record
# bucket and alias bucket are its own, a page's record the page's.
# Claim an alias for a page (ARGV: the alias's id and URL, the page): {'page'} when the alias
# has a record of its own, {'alias', page} when it is another page's, else {'ok', 1 when new}.
_CLAIM_ALIAS = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cmsgpack.unpack(raw)[1] == ARGV[2] then return {'page'} end
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[3] then return {'alias', owner} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {'ok', owner and 0 or 1}
"""

# Free an alias (ARGV: its id, the page) unless another page holds it now.
_RELEASE_ALIAS = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""

# Write a page's aliases (ARGV: its id and URL, n, m, the n new aliases, the m it had when the
# caller read them): 'missing' without a record, 'stale' when they changed meanwhile, else 'ok'.
_PUT_ALIASES = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local rec = raw and cmsgpack.unpack(raw)
if not rec or rec[1] ~= ARGV[2] then return 'missing' end
local n, m = tonumber(ARGV[3]), tonumber(ARGV[4])
local had = rec[5] or {}
if #had ~= m then return 'stale' end
for j = 1, m do
  if had[j] ~= ARGV[4 + n + j] then return 'stale' end
end
local new = {}
for i = 1, n do new[i] = ARGV[4 + i] end
rec[5] = n > 0 and new or nil
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(rec))
return 'ok'
"""

# A throttle that extends one still running keeps its start.
_THROTTLE = """
if tonumber(redis.call('HGET', KEYS[1], 'throttled_until') or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'throttled_since', ARGV[2])
end
redis.call('HSET', KEYS[1], 'throttled_until', ARGV[1])
"""

# A share click: KEYS are the URL's bucket, the day's visitors of its page and network, and the
# URL's history bucket, where the clicks are a series of their own (under the network's number
# negated) of what a network counted by clicks shows: its clicks, never below its floor. A
# visitor the HyperLogLog already holds changes no register, so PFADD's answer is the test (a
# new one that changes none is missed: rare below thousands a day, and a click count can miss a
# little where a set of every hash would grow without bound); one script keeps test and count
# together. ARGV: id, url, network number, visitor, visitors' TTL, now, history days. Returns -1
# untracked, 0 seen today, 1 counted.
_CLICK_BODY = """
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
if e[3].k > (e[3].f or 0) then
  history_add(KEYS[3], ARGV[1], -code, rec[2], e[3].k, tonumber(ARGV[6]), tonumber(ARGV[7]))
end
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

# The URLs a merge found with a count, and those of them answered 0, into the provider's stats.
_ZEROED = (
    STATS_LUA
    + """
local now = tonumber(ARGV[1])
local slot = stats_slot(KEYS[1], now)
stats_add(KEYS[1], slot, 'had', tonumber(ARGV[2]))
stats_add(KEYS[1], slot, 'zero', tonumber(ARGV[3]))
"""
)


# One key: counts a URL added by a read unless the domain's cap is reached.
_ADD_CAPPED = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""
# One key: counts a URL added by a read in a minute, the counter expiring after ARGV[1] s.
_COUNT_NEW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
# A minute's counters of added URLs outlive the minute by one, for processes whose clocks lag.
NEW_URLS_TTL = 120
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


def _shard_tags() -> tuple[str, ...]:
    """One short hash tag per shard, the k-th in the k-th of SHARDS equal ranges of slots: a
    cluster whose masters own equal ranges (as `--cluster create` makes them) gets as many
    shards on each master."""
    width = REDIS_CLUSTER_HASH_SLOTS // SHARDS
    alphabet = string.digits + string.ascii_lowercase
    tags: dict[int, str] = {}
    # Two characters at most keep key names short: every byte of a bucket's name counts.
    for tag in (*alphabet, *(a + b for a in alphabet for b in alphabet)):
        tags.setdefault(key_slot(tag.encode()) // width, tag)
    return tuple(tags[k] for k in range(SHARDS))


SHARD_TAGS = _shard_tags()


def _bucket(ident: str) -> int:
    raw = base64.urlsafe_b64decode(ident + "=")
    return int.from_bytes(raw[:4], "big") % BUCKETS


def _bucket_key(kind: str, bucket: int) -> str:
    return f"{PREFIX}{kind}:{{{SHARD_TAGS[bucket % SHARDS]}}}{bucket}"


def visitors_key(ident: str, code: int, day: int) -> str:
    """The HyperLogLog of one day's visitors that clicked a URL's share link for a network."""
    return f"{PREFIX}v:{{{SHARD_TAGS[_bucket(ident) % SHARDS]}}}:{ident}:{code}:{day}"


def _located(kind: str, url_or_id: str, is_id: bool) -> tuple[str, str]:
    ident = url_or_id if is_id else url_id(url_or_id)
    return _bucket_key(kind, _bucket(ident)), ident


def shard_of(url_or_id: str, *, is_id: bool = False) -> int:
    """The shard that holds a URL's keys."""
    return _bucket(url_or_id if is_id else url_id(url_or_id)) % SHARDS


def due_key(shard: int) -> str:
    """The due queue of one shard."""
    return f"{PREFIX}due:{{{SHARD_TAGS[shard]}}}"


def due_keys() -> list[str]:
    return [due_key(k) for k in range(SHARDS)]


def due_location(url_or_id: str, *, is_id: bool = False) -> tuple[str, str]:
    """The due queue and member that hold when a URL is next due."""
    ident = url_or_id if is_id else url_id(url_or_id)
    return due_key(_bucket(ident) % SHARDS), ident


def record_location(url_or_id: str, *, is_id: bool = False) -> tuple[str, str]:
    """The bucket key and field that hold a URL's record."""
    return _located("r", url_or_id, is_id)


def history_location(url_or_id: str, *, is_id: bool = False) -> tuple[str, str]:
    """The bucket key and field that hold a URL's history (the record's bucket number)."""
    return _located("h", url_or_id, is_id)


def alias_location(url_or_id: str) -> tuple[str, str]:
    """The bucket key and field that say which page a URL is an alias of."""
    return _located("a", url_or_id, False)


def bucket_keys() -> list[str]:
    return [_bucket_key("r", n) for n in range(BUCKETS)]


def history_keys() -> list[str]:
    return [_bucket_key("h", n) for n in range(BUCKETS)]


def provider_key(name: str) -> str:
    return f"{PREFIX}{{provider:{name}}}"


def stats_key(name: str) -> str:
    return provider_key(name) + ":stats"


def budget_key(name: str) -> str:
    return provider_key(name) + ":budget"


def slots_key(name: str) -> str:
    return provider_key(name) + ":slots"


def new_urls_key(scope: Literal["c", "d"], name: str, minute: int) -> str:
    """The counter of URLs that reads added in one minute, per client (`c`) or domain (`d`)."""
    return f"{PREFIX}new:{scope}:{name}:{minute}"


def added_key(domain: str) -> str:
    """The counter of URLs that reads have added on a domain."""
    return f"{PREFIX}added:{domain}"


class AliasTaken(Exception):
    """An alias that is a page with a record of its own, or another page's alias: counting it
    with a page as well would count its shares twice."""

    def __init__(self, alias: str, page: str | None) -> None:
        where = f"an alias of {page}" if page else "a page with a record of its own"
        super().__init__(f"{alias} is {where}")
        self.alias = alias
        self.page = page


# A script call: the script, its keys (all in one slot, the first one's), its arguments.
Call = tuple[AsyncScript, Sequence[str], Sequence[str | int]]


class NotReplicated(RedisTimeoutError):
    """In cluster mode no replica acknowledged a write in time: a failover could lose it, so it
    does not count as done (a fetch's URLs stay leased and are fetched again)."""

    def __init__(self, waited_ms: int) -> None:
        super().__init__(f"no replica acknowledged the write within {waited_ms} ms")


def _by_shard(ids: Iterable[str]) -> dict[int, list[str]]:
    """URL ids grouped by their shard."""
    groups: dict[int, list[str]] = {}
    for ident in ids:
        groups.setdefault(shard_of(ident, is_id=True), []).append(ident)
    return groups


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
    # URLs an admin said are this page; their counts are part of its counts.
    aliases: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(n.count for n in self.networks.values() if n.count is not None)


@dataclass(frozen=True)
class Claim:
    """A leased URL: when it was first tracked, and when each network last answered for it
    (None: never, or not since an admin forced a refresh)."""

    tracked_at: float
    fetched: dict[str, float | None]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Series:
    """One network's history of a URL, oldest first: (day, count) and (hour, count) points,
    counted in UTC since 1970, where its count changed (it held until the next one); `clicks`
    the same of its share clicks never below its floor, where either was set."""

    daily: list[tuple[int, int]]
    hourly: list[tuple[int, int]] = field(default_factory=list)
    clicks: Series | None = None


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


def _series(packed: Sequence[Any] | None) -> Series:
    """A network's series from its `[daily, hourly]` (hourly left out when empty)."""
    if packed is None:
        return Series(daily=[])
    daily, *hourly = packed
    return Series(daily=_points(daily), hourly=_points(hourly[0]) if hourly else [])


def _fetched_unless_owed(entry: list[Any] | None) -> float | None:
    """When a network last answered, None when never or not since an admin's refresh."""
    if entry is None or (len(entry) > 2 and "o" in _keyed(entry[2])):
        return None
    return _time(entry[1])


def _aliases(packed: list[Any]) -> tuple[str, ...]:
    return tuple(packed[_ALIASES]) if len(packed) > _ALIASES else ()


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None


class Store:
    """Typed operations on flares' Redis data; each method is one or a few round trips."""

    def __init__(
        self,
        redis: Client,
        *,
        history_days: int = HISTORY_DAYS,
        replica_wait_ms: int = REPLICA_WAIT_MS,
    ) -> None:
        self.redis = redis
        self.history_days = history_days
        self.replica_wait_ms = replica_wait_ms
        self._track = redis.register_script(_TRACK)
        self._claim = redis.register_script(_CLAIM)
        self._read_many = redis.register_script(_READ)
        self._find = redis.register_script(_FIND)
        self._held = redis.register_script(_HELD)
        self._merge = redis.register_script(HISTORY_LUA + _MERGE_BODY)
        self._zeroed = redis.register_script(_ZEROED)
        self._failed = redis.register_script(_FAILED)
        self._force = redis.register_script(_FORCE)
        self._force_bucket = redis.register_script(_FORCE_BUCKET)
        self._site = redis.register_script(_SITE_BUCKET)
        self._name = redis.register_script(_NAME)
        self._throttle = redis.register_script(_THROTTLE)
        self._click = redis.register_script(HISTORY_LUA + _CLICK_BODY)
        self._baseline = redis.register_script(HISTORY_LUA + _BASELINE_BODY)
        self._untrack = redis.register_script(_UNTRACK)
        self._claim_alias = redis.register_script(_CLAIM_ALIAS)
        self._release_alias = redis.register_script(_RELEASE_ALIAS)
        self._put_aliases = redis.register_script(_PUT_ALIASES)
        self._add_capped = redis.register_script(_ADD_CAPPED)
        self._count_new = redis.register_script(_COUNT_NEW)
        # Numbers are never reassigned, so a process may keep what it has learned of them.
        self._codes: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._salt: tuple[int, str] | None = None
        # The shard this process claims from first next time: processes start apart.
        self._next_shard = secrets.randbelow(SHARDS)

    async def _scripts(
        self, calls: Sequence[Call], *, raw: bool = False, durable: bool = False
    ) -> list[Any]:
        """Run script calls in one round trip, each on its first key's node. A server that
        lacks a script (a fresh one, a promoted replica) gets it, and only those calls run again.
        `durable`: in cluster mode each node written waits for a replica (see NotReplicated)."""
        cluster = self.redis if durable and isinstance(self.redis, RedisCluster) else None
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            batch = [calls[i] for i in todo]
            if cluster is not None:
                answers = await self._replicated(cluster, batch)
            else:
                answers = await self._pipelined(batch, raw)
            missing: list[int] = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and not attempt:
                    missing.append(i)
                elif isinstance(answer, Exception):
                    raise answer
                results[i] = answer
            if not missing:
                break
            for script in {calls[i][0] for i in missing}:
                await self.redis.script_load(script.script)
            todo = missing
        return results

    async def _pipelined(self, calls: Sequence[Call], raw: bool) -> list[Any]:
        options = {NEVER_DECODE: True} if raw else {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **options)
            return await pipe.execute(raise_on_error=False)

    async def _replicated(self, cluster: RedisCluster, calls: Sequence[Call]) -> list[Any]:
        """Each node's calls on one of its connections, followed there by WAIT for a replica,
        which only counts the writes of its own connection. Without the cluster pipeline's
        retries and redirections, which could send the WAIT elsewhere: an error fails the
        writes, and the cluster's layout is read afresh on the next command."""
        await cluster.initialize()
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, (_, keys, _) in enumerate(calls):
            node = cluster.get_node_from_key(keys[0])
            if node is None:
                raise SlotNotCoveredError(f"no node serves {keys[0]}")
            groups.setdefault(node.name, (node, []))[1].append(i)
        answers: list[Any] = [None] * len(calls)

        async def on(node: ClusterNode, members: list[int]) -> None:
            commands = []
            for k, i in enumerate(members):
                script, keys, args = calls[i]
                commands.append(PipelineCommand(k, "EVALSHA", script.sha, len(keys), *keys, *args))
            wait = PipelineCommand(len(commands), "WAIT", 1, self.replica_wait_ms)
            await node.execute_pipeline([*commands, wait])
            for i, command in zip(members, commands, strict=True):
                answers[i] = command.result
            if isinstance(wait.result, Exception):
                raise wait.result
            if wait.result < 1:
                raise NotReplicated(self.replica_wait_ms)

        try:
            await asyncio.gather(*(on(node, members) for node, members in groups.values()))
        except RedisError:
            await cluster.aclose()
            raise
        if any(isinstance(a, RedisError) and not isinstance(a, NoScriptError) for a in answers):
            await cluster.aclose()
        return answers

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
            aliases=_aliases(packed),
        )

    def _script_groups(self, ids: Iterable[str]) -> list[list[str]]:
        """URL ids grouped for one script call each: by shard on a cluster, where a script's
        keys must share a slot, and all together on a single server, which has no slots (a call
        per shard would cost a 50-URL batch up to 50 calls)."""
        if isinstance(self.redis, RedisCluster):
            return list(_by_shard(ids).values())
        together = list(ids)
        return [together] if together else []

    async def _fields(self, kind: str, ids: Sequence[str]) -> list[bytes | None]:
        """The fields of URL ids in their `kind` buckets ("r" records, "a" aliases), in one
        round trip of script calls: a pipeline of single reads costs the client a command and
        a reply each (two thirds of a 1,000-URL bulk read's time in bench/bulk.py)."""
        groups = self._script_groups(dict.fromkeys(ids))
        calls: list[Call] = [
            (self._read_many, [_bucket_key(kind, _bucket(i)) for i in group], group)
            for group in groups
        ]
        found: dict[str, bytes | None] = {}
        for group, raws in zip(groups, await self._scripts(calls, raw=True), strict=True):
            found.update(zip(group, raws, strict=True))
        return [found[i] for i in ids]

    async def _read(self, ids: Sequence[str]) -> list[list[Any] | None]:
        """The packed records of URL ids, None for those not tracked."""
        return [_unpack(raw) if raw is not None else None for raw in await self._fields("r", ids)]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def track(self, url: str, now: float) -> bool:
        """Start tracking a canonical URL, due at once; False if it was already tracked."""
        return await self.track_many([url], now) == 1

    async def track_many(self, urls: Iterable[str], now: float) -> int:
        """Track many canonical URLs in one round trip; returns how many were not tracked (new,
        or untracked with their record kept). A page's alias is not tracked: it counts there."""
        urls = list(urls)
        calls: list[Call] = []
        for url in urls:
            key, ident = record_location(url)
            keys = [key, due_location(ident, is_id=True)[0], alias_location(url)[0]]
            calls.append((self._track, keys, [ident, url, _seconds(now)]))
        created: list[int] = await self._scripts(calls, durable=True)
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

    async def find(self, url: str) -> UrlRecord | None:
        """The URL's record or, when it is an alias, its page's (whose `url` says which);
        None when neither is tracked."""
        keys = [record_location(url)[0], alias_location(url)[0]]
        [(raw, page)] = await self._scripts([(self._find, keys, [url_id(url)])], raw=True)
        packed = _unpack(raw) if raw is not None else None
        if packed is not None and packed[_URL] == url:
            return await self._record(url, packed)
        return await self.get(page.decode()) if page is not None else None

    async def find_many(self, urls: Sequence[str]) -> dict[str, UrlRecord | None]:
        """find() for many URLs: one round trip, and two more only when some URL has no
        record (for the alias entries, then for their pages)."""
        records = await self.get_many(urls)
        missing = [url for url in urls if records[url] is None]
        if not missing:
            return records
        raws = await self._fields("a", [url_id(url) for url in missing])
        pages = {url: raw.decode() for url, raw in zip(missing, raws, strict=True) if raw}
        if pages:
            found = await self.get_many(list(dict.fromkeys(pages.values())))
            records.update({alias: found[page] for alias, page in pages.items()})
        return records

    async def held(self, urls: Iterable[str]) -> set[str]:
        """Those of the URLs that have a record of their own (tracked or not) or are a page's
        alias, in one round trip."""
        ids = {url_id(url): url for url in urls}
        groups = self._script_groups(ids)
        calls: list[Call] = []
        for group in groups:
            keys = [
                k for i in group for k in (record_location(ids[i])[0], alias_location(ids[i])[0])
            ]
            calls.append((self._held, keys, group))
        answers: list[list[int]] = await self._scripts(calls)
        return {
            ids[i]
            for group, answer in zip(groups, answers, strict=True)
            for i, found in zip(group, answer, strict=True)
            if found
        }

    async def due_at(self, url: str) -> float | None:
        """When a tracked URL is next due (or its lease ends), None when not tracked."""
        score = await self.redis.zscore(*due_location(url))
        return float(score) if score is not None else None

    async def tracked_count(self) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in due_keys():
                pipe.zcard(key)
            sizes: list[int] = await pipe.execute()
        return sum(sizes)

    async def _claim_ids(self, now: float, limit: int, lease_until: float) -> list[str]:
        """Lease up to `limit` due ids: from the next shard in turn when it has that many (a
        batch then touches one shard), else topped up from the others, a pipeline a pass, with
        `limit` shared out among them so that no more are leased."""
        first = self._next_shard
        self._next_shard = (first + 1) % SHARDS
        start, end = repr(now), repr(lease_until)
        ids: list[str] = await self._claim(keys=[due_key(first)], args=[start, limit, end])
        pending = [(first + k) % SHARDS for k in range(1, SHARDS)]
        while pending and len(ids) < limit:
            want = limit - len(ids)
            asked = pending[:want]
            quotas = [want // len(asked) + (k < want % len(asked)) for k in range(len(asked))]
            calls: list[Call] = [
                (self._claim, [due_key(shard)], [start, quota, end])
                for shard, quota in zip(asked, quotas, strict=True)
            ]
            found: list[list[str]] = await self._scripts(calls)
            ids += [i for got in found for i in got]
            # A shard that gave all it was asked for may have more.
            full = [s for s, q, got in zip(asked, quotas, found, strict=True) if len(got) == q]
            pending = pending[len(asked) :] + full
        return ids

    async def claim_due(
        self, now: float, limit: int, lease_until: float, networks: Sequence[str] = ()
    ) -> dict[str, Claim]:
        """Lease up to `limit` due URLs; for each, when it was first tracked and when each of
        `networks` last answered for it since the last forced refresh."""
        ids = await self._claim_ids(now, limit, lease_until)
        if not ids:
            return {}
        codes = await self._codes_for(networks)
        records = await self._read(ids)
        orphans = [i for i, packed in zip(ids, records, strict=True) if packed is None]
        if orphans:
            # A queue entry whose record is gone would otherwise be leased again forever.
            async with self.redis.pipeline(transaction=False) as pipe:
                for shard, members in _by_shard(orphans).items():
                    pipe.zrem(due_key(shard), *members)
                await pipe.execute()
        claims: dict[str, Claim] = {}
        for packed in records:
            if packed is None:
                continue
            entries = _keyed(packed[_NETWORKS])
            fetched = {
                name: _fetched_unless_owed(entries.get(code))
                for name, code in zip(networks, codes, strict=True)
            }
            claims[packed[_URL]] = Claim(float(packed[_TRACKED]), fetched, _aliases(packed))
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
        shared: list[str | int] = [code, _seconds(now), today - DAY_WINDOW, self.history_days]
        ids = {url_id(url): url for url in observations}
        groups = self._script_groups(ids)
        calls: list[Call] = []
        for group in groups:
            args = list(shared)
            for ident in group:
                obs = observations[ids[ident]]
                args += [ident, _capped(obs.count), len(obs.parts)]
                for part, value in obs.parts.items():
                    args += [part_code[part], _capped(value)]
                args.append(len(obs.days))
                for day, value in obs.days.items():
                    args += [date.fromisoformat(day).toordinal() - _EPOCH_DAY, _capped(value)]
            buckets = [_bucket(i) for i in group]
            keys = [_bucket_key("r", b) for b in buckets] + [_bucket_key("h", b) for b in buckets]
            calls.append((self._merge, keys, args))
        answers: list[list[int]] = await self._scripts(calls, durable=True)
        had, zeroed = sum(a[0] for a in answers), sum(a[1] for a in answers)
        if had:
            await self._zeroed(keys=[stats_key(network)], args=[_seconds(now), had, zeroed])
        return {
            ids[ident]
            for group, answer in zip(groups, answers, strict=True)
            for ident, up in zip(group, answer[2:], strict=True)
            if up == 1
        }

    async def history(self, url: str) -> dict[str, Series]:
        """Each network's history of a URL, by name; empty for one without (or not tracked)."""
        key, ident = history_location(url)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.execute_command("HGET", key, ident, **{NEVER_DECODE: True})
            [raw] = await pipe.execute()
        if raw is None:
            return {}
        # Raw: a series' points are bytes, not text.
        packed = _keyed(msgpack.unpackb(raw, raw=True, strict_map_key=False))
        found: dict[str, Series] = {}
        # A network's clicks are under its number negated, and may be all it has.
        for code in sorted({abs(c) for c in packed}):
            clicks = _series(packed[-code]) if -code in packed else None
            found[await self._name_of(code)] = replace(_series(packed.get(code)), clicks=clicks)
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

    async def count_click(
        self, url: str, network: str, visitor: str, day: int, *, now: float | None = None
    ) -> bool:
        """Count a share click on a tracked URL unless this visitor was counted for its page and
        network that day (its history's point at `now`, by default the clock's); whether it
        counted. `visitor` is a salted hash, never an address."""
        key, ident = record_location(url)
        [code] = await self._codes_for([network])
        keys = [key, visitors_key(ident, code, day), history_location(ident, is_id=True)[0]]
        at = _seconds(time.time() if now is None else now)
        args: list[str | int] = [ident, url, code, visitor, CLICK_TTL, at, self.history_days]
        [counted] = await self._scripts([(self._click, keys, args)], durable=True)
        return bool(counted == 1)

    async def untrack(self, url: str, *, purge: bool = False) -> bool | None:
        """Stop fetching a URL, its record and counts kept unless `purge` (which frees its
        aliases too); whether it was tracked, None when there is no record."""
        key, ident = record_location(url)
        # Read first: once purged, the record no longer says which aliases to free.
        record = await self.get(url) if purge else None
        args: list[str | int] = [ident, url, int(purge)]
        keys = [key, due_location(ident, is_id=True)[0], history_location(url)[0]]
        queued: int = await self._untrack(keys=keys, args=args)
        if record is not None:
            await self._release_aliases(url, record.aliases)
        return None if queued < 0 else bool(queued)

    async def set_aliases(self, url: str, aliases: Sequence[str]) -> tuple[str, ...] | None:
        """Make `aliases` (canonical URLs) a page's aliases, replacing those it had; returns
        those, None when the page has no record, and raises AliasTaken for an alias that is a
        page of its own or another page's alias (then nothing changes)."""
        aliases = list(dict.fromkeys(aliases))
        key, ident = record_location(url)
        while True:
            [packed] = await self._read([ident])
            if packed is None or packed[_URL] != url:
                return None
            old = _aliases(packed)
            claimed = await self._claim_aliases(url, aliases)
            args: list[str | int] = [ident, url, len(aliases), len(old), *aliases, *old]
            written: str = await self._put_aliases(keys=[key], args=args)
            if written == "missing":
                await self._release_aliases(url, claimed)
                return None
            # "stale": another admin changed them meanwhile; claiming again changes nothing.
            if written == "ok":
                await self._release_aliases(url, [a for a in old if a not in aliases])
                return old

    async def _claim_aliases(self, url: str, aliases: Sequence[str]) -> list[str]:
        """Reserve aliases for a page, in their own shards; returns those it newly holds. An
        alias held elsewhere frees those again and raises AliasTaken."""
        calls: list[Call] = []
        for alias in aliases:
            record_key, ident = record_location(alias)
            keys = [record_key, alias_location(alias)[0]]
            calls.append((self._claim_alias, keys, [ident, alias, url]))
        answers: list[list[Any]] = await self._scripts(calls)
        claimed = [a for a, answer in zip(aliases, answers, strict=True) if answer == ["ok", 1]]
        for alias, answer in zip(aliases, answers, strict=True):
            if answer[0] != "ok":
                await self._release_aliases(url, claimed)
                raise AliasTaken(alias, answer[1] if answer[0] == "alias" else None)
        return claimed

    async def _release_aliases(self, url: str, aliases: Sequence[str]) -> None:
        """Free aliases that a page holds (not those another page holds by now)."""
        if not aliases:
            return
        calls: list[Call] = []
        for alias in aliases:
            key, ident = alias_location(alias)
            calls.append((self._release_alias, [key], [ident, url]))
        await self._scripts(calls)

    async def set_baselines(
        self,
        rows: Sequence[tuple[str, str, int]],
        *,
        reset: bool = False,
        now: float | None = None,
    ) -> list[bool | None]:
        """Set (url, network, value) baselines: the count rises to the value, or with `reset`
        becomes it (a point in its history at `now`, by default the clock's); per row whether
        anything changed, None for an untracked URL."""
        if not rows:
            return []
        codes = await self._codes_for([network for _, network, _ in rows])
        groups: dict[int, list[int]] = {}
        for row, (url, _, _) in enumerate(rows):
            groups.setdefault(shard_of(url), []).append(row)
        at = _seconds(time.time() if now is None else now)
        calls: list[Call] = []
        for members in groups.values():
            args: list[str | int] = [int(reset), at, self.history_days]
            for row in members:
                url, _, value = rows[row]
                args += [url_id(url), url, codes[row], _capped(value)]
            keys = [record_location(rows[row][0])[0] for row in members]
            keys += [history_location(rows[row][0])[0] for row in members]
            calls.append((self._baseline, keys, args))
        answers: list[list[int]] = await self._scripts(calls, durable=True)
        changed: dict[int, int] = {}
        for members, answer in zip(groups.values(), answers, strict=True):
            changed.update(zip(members, answer, strict=True))
        return [None if changed[row] < 0 else bool(changed[row]) for row in range(len(rows))]

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
        calls: list[Call] = []
        for url in urls:
            key, ident = record_location(url)
            keys = [key, due_location(ident, is_id=True)[0]]
            calls.append((self._force, keys, [ident, _seconds(now)]))
        done: list[int] = await self._scripts(calls)
        return sum(done)

    async def refresh_domain(self, domain: str, now: float) -> int:
        """Make every tracked URL on `domain` and its subdomains due now."""
        total = 0
        keys = bucket_keys()
        # A bucket at a time, in pipelines, so that Redis never runs one long script.
        for start in range(0, len(keys), 1024):
            calls: list[Call] = [
                (self._force_bucket, [keys[n], due_key(n % SHARDS)], [domain, _seconds(now)])
                for n in range(start, min(start + 1024, len(keys)))
            ]
            counts: list[int] = await self._scripts(calls)
            total += sum(counts)
        return total

    async def site(self, domain: str) -> list[UrlRecord]:
        """Every record of the pages on a domain and its subdomains: a walk over all buckets,
        so O(tracked URLs) on the server; callers cache the answer."""
        found: list[UrlRecord] = []
        keys = bucket_keys()
        for start in range(0, len(keys), 1024):
            calls: list[Call] = [(self._site, [k], [domain]) for k in keys[start : start + 1024]]
            buckets: list[list[bytes]] = await self._scripts(calls, raw=True)
            for raw in (r for bucket in buckets for r in bucket):
                packed = _unpack(raw)
                found.append(await self._record(packed[_URL], packed))
        return found

    async def refresh_all(self, now: float) -> int:
        """Make every tracked URL due now."""
        return await self.refresh_domain("", now)

    async def mark_failed(self, network: str, urls: Iterable[str], now: float) -> None:
        """Note a failed fetch; no count changes."""
        groups = self._script_groups(url_id(url) for url in urls)
        if not groups:
            return
        [code] = await self._codes_for([network])
        calls: list[Call] = []
        for ids in groups:
            keys = [record_location(i, is_id=True)[0] for i in ids]
            calls.append((self._failed, keys, [code, _seconds(now), *ids]))
        await self._scripts(calls)

    async def reschedule(self, due: Mapping[str, float]) -> None:
        """Set the next due time of URLs that are still tracked."""
        if not due:
            return
        times = {url_id(u): t for u, t in due.items()}
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, ids in _by_shard(times).items():
                pipe.zadd(due_key(shard), {i: times[i] for i in ids}, xx=True)
            await pipe.execute()

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
            for key in due_keys():
                pipe.zcount(key, "-inf", now)
                pipe.zrange(key, 0, 0, withscores=True)
            answers = await pipe.execute()
        oldest = min((float(first[0][1]) for first in answers[1::2] if first), default=now + 1)
        return sum(int(due) for due in answers[::2]), oldest if oldest <= now else None

    async def freshness(self, now: float, grace: float) -> tuple[int, int]:
        """Tracked URLs not overdue by more than `grace` seconds, and all tracked URLs."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in due_keys():
                # A leased URL's score is its lease's end: one being fetched is never overdue.
                pipe.zcount(key, "-inf", f"({now - grace!r}")
                pipe.zcard(key)
            answers: list[int] = await pipe.execute()
        tracked = sum(answers[1::2])
        return tracked - sum(answers[::2]), tracked

    async def beat(self, ttl: float) -> None:
        """Say that a scheduler is alive for the next `ttl` seconds."""
        await self.redis.set(HEARTBEAT, "1", px=max(1, int(ttl * 1000)))

    async def scheduler_alive(self) -> bool:
        return bool(await self.redis.exists(HEARTBEAT))

    async def count_new_url(self, scope: Literal["c", "d"], name: str, minute: int) -> int:
        """Count one URL a read adds in this minute for a client or domain; the minute's count."""
        count: int = await self._count_new(
            keys=[new_urls_key(scope, name, minute)], args=[NEW_URLS_TTL]
        )
        return count

    async def add_on_domain(self, domain: str, cap: int) -> bool:
        """Take one of the `cap` URLs reads may add on a domain; False when none is left."""
        taken: int = await self._add_capped(keys=[added_key(domain)], args=[cap])
        return taken == 1

    async def release_on_domain(self, domain: str) -> None:
        """Give back a URL taken with add_on_domain that was tracked already."""
        await self.redis.decr(added_key(domain))
