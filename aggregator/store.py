"""The Redis data model; the only module that knows key names.

Keys (prefix `flares:`):
- `due`                  sorted set: tracked URL -> unix time it is next due (a claim leases it
                         by pushing the score forward, so a dead worker's URLs come due again)
- `url:<url>`            hash: tracked_at, updated_at, forced_at (an admin's refresh), total, and
                         per network `count:<n>` (served, never lower), `seen:<n>` (last value
                         the network gave), `fetched:<n>`, `failed:<n>` (times of the last
                         success and failure), `part:<n>:<part>`
                         (components the network reported), and for networks that report a
                         recent window only, `day:<n>:<YYYY-MM-DD>` buckets plus `base:<n>`, the
                         sum of the days folded in once they left the window
- `domain:<host>`        set of the tracked URLs on a host, for refreshing a whole site
- `hosts`                set of the hosts that have tracked URLs
- `{provider:<name>}`    hash: last_success_at, last_failure_at, last_error, consecutive_failures,
                         throttled_until, rejected (fingerprint of the credentials a network
                         refused), rejected_reason, and the circuit breaker's breaker_until,
                         breaker_since and probe_until
- `{provider:<name>}:budget`  hash: the request budget's window number and counts (gate.py)
- `{provider:<name>}:slots`   sorted set: requests in flight, scored by when their slot expires
- `heartbeat`            string with a TTL, set by every running scheduler

The provider keys share a hash tag so that the gate's scripts touch one cluster slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis

from providers.base import Observation

PREFIX = "flares:"
DUE = PREFIX + "due"
HEARTBEAT = PREFIX + "heartbeat"
HOSTS = PREFIX + "hosts"

_TRACK = """
if redis.call('HSETNX', KEYS[1], 'tracked_at', ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[3])
  return 1
end
return 0
"""

_CLAIM = """
local urls = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, u in ipairs(urls) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], u)
end
return urls
"""

# Never lower a served count: the network's value is recorded in `seen:` but `count:` only rises,
# and the total moves by the same delta in the same atomic step. Day buckets replace the same
# day's earlier value (never add to it); days older than the cutoff are folded into `base:`, and
# an incoming day older than the cutoff is ignored because it was folded in already.
_MERGE = """
if redis.call('HEXISTS', KEYS[1], 'tracked_at') == 0 then return -1 end
local net, new, now, cutoff = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local i = 5
for _ = 1, tonumber(ARGV[i]) do
  redis.call('HSET', KEYS[1], 'part:' .. net .. ':' .. ARGV[i + 1], ARGV[i + 2])
  i = i + 2
end
i = i + 1
local ndays = tonumber(ARGV[i])
if ndays > 0 then
  local prefix = 'day:' .. net .. ':'
  for _ = 1, ndays do
    if ARGV[i + 1] >= cutoff then
      redis.call('HSET', KEYS[1], prefix .. ARGV[i + 1], ARGV[i + 2])
    end
    i = i + 2
  end
  local base = tonumber(redis.call('HGET', KEYS[1], 'base:' .. net) or '0')
  local recent = 0
  local fields = redis.call('HGETALL', KEYS[1])
  for j = 1, #fields, 2 do
    local f = fields[j]
    if string.sub(f, 1, #prefix) == prefix then
      if string.sub(f, #prefix + 1) < cutoff then
        base = base + tonumber(fields[j + 1])
        redis.call('HDEL', KEYS[1], f)
      else
        recent = recent + tonumber(fields[j + 1])
      end
    end
  end
  redis.call('HSET', KEYS[1], 'base:' .. net, base)
  new = base + recent
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'count:' .. net) or '-1')
redis.call('HSET', KEYS[1], 'seen:' .. net, new, 'fetched:' .. net, now, 'updated_at', now)
if new > cur then
  redis.call('HSET', KEYS[1], 'count:' .. net, new)
  redis.call('HINCRBY', KEYS[1], 'total', new - math.max(cur, 0))
  if cur >= 0 then return 1 end
  return 2
end
return 0
"""

# Only a tracked URL gets a failure time: a URL dropped while its fetch ran must not come back
# as a hash without `tracked_at`.
_FAILED = """
if redis.call('HEXISTS', KEYS[1], 'tracked_at') == 1 then
  redis.call('HSET', KEYS[1], 'failed:' .. ARGV[1], ARGV[2])
end
"""

# An admin's refresh: due now (never later than it was) and fetched afresh by every network.
_FORCE = """
if redis.call('HEXISTS', KEYS[1], 'tracked_at') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'forced_at', ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', 'LT', ARGV[1], ARGV[2])
return 1
"""

# Lua holds numbers as doubles: above 2^53 a count loses digits, and a huge one is written as
# "1e+20" (which int() cannot read) before HINCRBY rejects it half-way through the script.
MAX_COUNT = 2**53 - 1
# Day buckets stay separate this many days (X reports 7), then fold into one number.
DAY_WINDOW = 8
NETWORK_FIELDS = ("count", "seen", "fetched", "failed")


def url_key(url: str) -> str:
    return f"{PREFIX}url:{url}"


def provider_key(name: str) -> str:
    return f"{PREFIX}{{provider:{name}}}"


def budget_key(name: str) -> str:
    return provider_key(name) + ":budget"


def slots_key(name: str) -> str:
    return provider_key(name) + ":slots"


def domain_key(host: str) -> str:
    return f"{PREFIX}domain:{host}"


@dataclass(frozen=True)
class NetworkRecord:
    """What the store holds for one network of one URL."""

    count: int | None
    seen: int | None
    fetched_at: float | None
    failed_at: float | None
    parts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UrlRecord:
    """A tracked URL with its counts."""

    url: str
    tracked_at: float
    updated_at: float | None
    total: int
    networks: dict[str, NetworkRecord] = field(default_factory=dict)


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
    consecutive_failures: int = 0
    throttled_until: float | None = None
    rejected: str | None = None
    rejected_reason: str | None = None
    breaker_until: float | None = None
    breaker_since: float | None = None

    def breaker(self, now: float) -> Literal["closed", "open", "half-open"]:
        """The circuit breaker's state: open until its cool-down ends, then half-open."""
        if self.breaker_until is None:
            return "closed"
        return "open" if now < self.breaker_until else "half-open"


async def _chunked(items: AsyncIterator[str], size: int = 1000) -> AsyncIterator[list[str]]:
    chunk: list[str] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fetched_since_forced(
    networks: Sequence[str], row: list[str | None]
) -> dict[str, float | None]:
    """Fetch times, forgetting those older than a forced refresh so every network asks again."""
    forced = _float(row[0])
    times = (_float(v) for v in row[1:])
    return {
        n: None if t is None or (forced is not None and t < forced) else t
        for n, t in zip(networks, times, strict=True)
    }


def _capped(count: int) -> int:
    return min(max(count, 0), MAX_COUNT)


def _pairs(values: Mapping[str, int]) -> list[str | int]:
    """A count then flat key/value pairs, as the merge script reads them."""
    flat: list[str | int] = [len(values)]
    for key, value in values.items():
        flat += [key, _capped(value)]
    return flat


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def _url_record(url: str, raw: Mapping[str, str]) -> UrlRecord:
    names: set[str] = set()
    parts: dict[str, dict[str, int]] = {}
    for key, value in raw.items():
        kind, _, rest = key.partition(":")
        if kind in NETWORK_FIELDS:
            names.add(rest)
        elif kind == "part":
            network, _, part = rest.partition(":")
            parts.setdefault(network, {})[part] = int(value)
    networks = {
        name: NetworkRecord(
            count=_int(raw.get(f"count:{name}")),
            seen=_int(raw.get(f"seen:{name}")),
            fetched_at=_float(raw.get(f"fetched:{name}")),
            failed_at=_float(raw.get(f"failed:{name}")),
            parts=parts.get(name, {}),
        )
        for name in sorted(names)
    }
    return UrlRecord(
        url=url,
        tracked_at=float(raw["tracked_at"]),
        updated_at=_float(raw.get("updated_at")),
        total=int(raw.get("total", 0)),
        networks=networks,
    )


class Store:
    """Typed operations on flares' Redis data; every method is one round trip."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._track = redis.register_script(_TRACK)
        self._claim = redis.register_script(_CLAIM)
        self._merge = redis.register_script(_MERGE)
        self._failed = redis.register_script(_FAILED)
        self._force = redis.register_script(_FORCE)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def track(self, url: str, now: float) -> bool:
        """Start tracking a canonical URL, due at once; False if it was already tracked."""
        host = urlsplit(url).hostname or ""
        keys = [url_key(url), DUE, domain_key(host), HOSTS]
        return bool(await self._track(keys=keys, args=[repr(now), url, host]))

    async def track_many(self, urls: Iterable[str], now: float) -> int:
        """Track many canonical URLs in one round trip; returns how many were new."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                host = urlsplit(url).hostname or ""
                keys = [url_key(url), DUE, domain_key(host), HOSTS]
                await self._track(keys=keys, args=[repr(now), url, host], client=pipe)
            created: list[int] = await pipe.execute()
        return sum(created)

    async def get(self, url: str) -> UrlRecord | None:
        raw = cast(dict[str, str], await self.redis.hgetall(url_key(url)))
        return _url_record(url, raw) if "tracked_at" in raw else None

    async def tracked_count(self) -> int:
        return int(await self.redis.zcard(DUE))

    async def claim_due(
        self, now: float, limit: int, lease_until: float, networks: Sequence[str] = ()
    ) -> dict[str, Claim]:
        """Lease up to `limit` due URLs; for each, when it was first tracked and when each of
        `networks` last answered for it, read in the same round trip."""
        urls: list[str] = await self._claim(keys=[DUE], args=[repr(now), limit, repr(lease_until)])
        if not urls:
            return {}
        fields = ["tracked_at", "forced_at", *(f"fetched:{n}" for n in networks)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                pipe.hmget(url_key(url), fields)
            rows: list[list[str | None]] = await pipe.execute()
        orphans = [u for u, row in zip(urls, rows, strict=True) if row[0] is None]
        if orphans:
            # A queue entry whose record is gone would otherwise be leased again forever.
            await self.redis.zrem(DUE, *orphans)
        return {
            url: Claim(float(row[0]), _fetched_since_forced(networks, row[1:]))
            for url, row in zip(urls, rows, strict=True)
            if row[0] is not None
        }

    async def merge_counts(
        self, network: str, counts: Mapping[str, int | Observation], now: float
    ) -> set[str]:
        """Record fetched counts (the served count only ever rises); return the URLs whose count
        rose above an earlier one (a first count is not a move)."""
        if not counts:
            return set()
        cutoff = (datetime.fromtimestamp(now, UTC).date() - timedelta(days=DAY_WINDOW)).isoformat()
        async with self.redis.pipeline(transaction=False) as pipe:
            for url, seen in counts.items():
                obs = seen if isinstance(seen, Observation) else Observation(seen)
                args: list[str | int] = [network, _capped(obs.count), repr(now), cutoff]
                args += _pairs(obs.parts) + _pairs(obs.days)
                await self._merge(keys=[url_key(url)], args=args, client=pipe)
            rose: list[int] = await pipe.execute()
        return {url for url, up in zip(counts, rose, strict=True) if up == 1}

    async def refresh(self, urls: Iterable[str], now: float) -> int:
        """Make tracked URLs due now for every provider; returns how many were tracked."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                await self._force(keys=[url_key(url), DUE], args=[repr(now), url], client=pipe)
            done: list[int] = await pipe.execute()
        return sum(done)

    async def refresh_domain(self, domain: str, now: float) -> int:
        """Make every tracked URL on `domain` and its subdomains due now."""
        hosts: list[str] = [
            h async for h in self.redis.sscan_iter(HOSTS) if h == domain or h.endswith("." + domain)
        ]
        total = 0
        for host in hosts:
            async for chunk in _chunked(self.redis.sscan_iter(domain_key(host), count=1000)):
                total += await self.refresh(chunk, now)
        return total

    async def refresh_all(self, now: float) -> int:
        """Make every tracked URL due now, a chunk at a time so Redis never stalls."""
        total = 0
        members = (url async for url, _ in self.redis.zscan_iter(DUE, count=1000))
        async for chunk in _chunked(members):
            total += await self.refresh(chunk, now)
        return total

    async def mark_failed(self, network: str, urls: Iterable[str], now: float) -> None:
        """Note a failed fetch; no count changes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                await self._failed(keys=[url_key(url)], args=[network, repr(now)], client=pipe)
            await pipe.execute()

    async def reschedule(self, due: Mapping[str, float]) -> None:
        """Set the next due time of URLs that are still tracked."""
        if due:
            await self.redis.zadd(DUE, {u: t for u, t in due.items()}, xx=True)

    async def throttle(self, name: str, until: float) -> None:
        """Stop every process calling this provider until `until`."""
        await self.redis.hset(provider_key(name), "throttled_until", repr(until))

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
                consecutive_failures=int(raw.get("consecutive_failures", 0)),
                throttled_until=_float(raw.get("throttled_until")),
                rejected=raw.get("rejected"),
                rejected_reason=raw.get("rejected_reason"),
                breaker_until=_float(raw.get("breaker_until")),
                breaker_since=_float(raw.get("breaker_since")),
            )
            for name, raw in zip(names, raws, strict=True)
        }

    async def beat(self, ttl: float) -> None:
        """Say that a scheduler is alive for the next `ttl` seconds."""
        await self.redis.set(HEARTBEAT, "1", px=max(1, int(ttl * 1000)))

    async def scheduler_alive(self) -> bool:
        return bool(await self.redis.exists(HEARTBEAT))
