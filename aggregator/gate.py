"""The gate every request to a network passes, shared by all processes through Redis.

One script decides, atomically, whether a request may go now: the network has not asked us to
wait, the circuit breaker is closed (or lets this request probe), the provider's concurrency
limit has a free slot and its request budget covers the request's cost. A second script records
how the request went: it frees the slot and moves the breaker.
"""

from __future__ import annotations

import math
import uuid
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from aggregator.config import Settings
from aggregator.health import fingerprint
from aggregator.store import (
    LATENCY_BOUNDS,
    STATS_LUA,
    Client,
    budget_key,
    provider_key,
    slots_key,
    stats_key,
)
from providers.base import Provider

Refusal = Literal["throttled", "rejected", "breaker", "busy", "budget", "unavailable"]
Result = Literal["ok", "failed", "neutral"]

# The budget is a sliding window approximated from two fixed windows: the previous window's
# count fades linearly as the current one goes on. Lua numbers reach Redis as integers, so
# waits travel as strings.
_ENTER = """
local now = tonumber(ARGV[1])
local fingerprint = ARGV[2]
if fingerprint ~= '' and redis.call('HGET', KEYS[1], 'rejected') == fingerprint then
  return {'rejected', '0'}
end
local throttled = tonumber(redis.call('HGET', KEYS[1], 'throttled_until') or '0')
if now < throttled then return {'throttled', tostring(throttled - now)} end
local reopen = tonumber(redis.call('HGET', KEYS[1], 'breaker_until') or '0')
local probing = false
if reopen > 0 then
  if now < reopen then return {'breaker', tostring(reopen - now)} end
  local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
  if now < probe then return {'breaker', tostring(probe - now)} end
  probing = true
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return {'busy', '0.05'} end
local window, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local cost = math.min(tonumber(ARGV[5]), limit)
local w = math.floor(now / window)
local seen = tonumber(redis.call('HGET', KEYS[2], 'w') or '-1')
local cur = tonumber(redis.call('HGET', KEYS[2], 'cur') or '0')
local prev = tonumber(redis.call('HGET', KEYS[2], 'prev') or '0')
if seen ~= w then
  if seen == w - 1 then prev = cur else prev = 0 end
  cur = 0
end
local into = (now - w * window) / window
local used = prev * (1 - into) + cur
if used + cost > limit then
  local wait = (w + 1) * window - now
  if prev > 0 then wait = math.min(wait, (used + cost - limit) / prev * window) end
  return {'budget', tostring(math.max(wait, 0.001))}
end
redis.call('HSET', KEYS[2], 'w', w, 'cur', cur + cost, 'prev', prev)
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 2000))
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[8])
if probing then redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[9])) end
return {'go', '0'}
"""

# A failure while probing, or the threshold-th failure in a row, opens the breaker for the
# cool-down; a success closes it. "neutral" (throttled, refused credentials) is recorded as the
# last error but moves no breaker. Every request lands in the stats with its latency.
_LEAVE = """
redis.call('ZREM', KEYS[2], ARGV[2])
local now = ARGV[1]
local slot = stats_slot(KEYS[3], tonumber(now))
stats_add(KEYS[3], slot, ARGV[3], 1)
stats_add(KEYS[3], slot, 'h' .. ARGV[7], 1)
stats_add(KEYS[3], slot, 'lat', tonumber(ARGV[8]))
if ARGV[10] == '404' then stats_add(KEYS[3], slot, 'nf', 1) end
if ARGV[3] ~= 'ok' and ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'last_failure_at', now, 'last_error', ARGV[4],
             'last_error_kind', ARGV[9], 'last_error_status', ARGV[10])
end
if ARGV[3] == 'ok' then
  local streak = tonumber(redis.call('HGET', KEYS[1], 'consecutive_failures') or '0')
  if streak > 0 or redis.call('HEXISTS', KEYS[1], 'ok_since') == 0 then
    redis.call('HSET', KEYS[1], 'ok_since', now)
  end
  redis.call('HSET', KEYS[1], 'last_success_at', now, 'consecutive_failures', 0)
  redis.call('HDEL', KEYS[1], 'breaker_until', 'breaker_since', 'probe_until',
             'rejected', 'rejected_reason', 'failing_since')
  return 'closed'
end
if ARGV[3] == 'neutral' then
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 'unchanged'
end
local failures = redis.call('HINCRBY', KEYS[1], 'consecutive_failures', 1)
if failures == 1 then redis.call('HSET', KEYS[1], 'failing_since', now) end
local probing = redis.call('HEXISTS', KEYS[1], 'probe_until') == 1
if failures >= tonumber(ARGV[5]) or probing then
  redis.call('HSET', KEYS[1], 'breaker_until', tonumber(now) + tonumber(ARGV[6]))
  redis.call('HSETNX', KEYS[1], 'breaker_since', now)
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 'open'
end
return 'closed'
"""


@dataclass(frozen=True)
class Limits:
    """What one provider may spend: requests per window, requests at once, breaker settings."""

    budget: int
    window: float
    concurrency: int
    breaker_after: int
    breaker_cooldown: float
    # A slot is held at most this long, so a process that dies cannot hold it forever.
    slot_seconds: float
    fingerprint: str = ""


@dataclass
class Report:
    """How a request went, filled in while it runs and handed to the gate afterwards."""

    result: Result = "failed"
    message: str = ""
    # The error's kind and HTTP status, when it failed.
    kind: str = ""
    status: int | None = None
    latency: float = 0.0


def limits_for(provider: type[Provider], settings: Settings) -> Limits:
    """What a provider may spend: settings over the provider's documented defaults."""
    conf = settings.provider(provider.name)
    budget, window = provider.budget
    return Limits(
        budget=conf.budget_requests or budget,
        window=conf.budget_window or window,
        concurrency=conf.concurrency or provider.concurrency,
        breaker_after=settings.health.breaker_after,
        breaker_cooldown=settings.health.breaker_cooldown,
        slot_seconds=conf.timeout * 2 + 5,
        fingerprint=fingerprint(provider, settings),
    )


@dataclass(frozen=True)
class Pass:
    """Permission for one request; hand it back to `leave` when the request is over."""

    slot: str


@dataclass(frozen=True)
class Refused:
    """Why a request may not go now, and how long to wait before trying again."""

    reason: Refusal
    wait: float


class Gate:
    """Shared admission control for requests to the networks."""

    def __init__(self, redis: Client) -> None:
        self._redis = redis
        self._enter = redis.register_script(_ENTER)
        self._leave = redis.register_script(STATS_LUA + _LEAVE)

    async def enter(self, name: str, cost: int, limits: Limits, now: float) -> Pass | Refused:
        """Take a slot and `cost` of the budget, or say why not."""
        slot = uuid.uuid4().hex
        verdict, wait = await self._enter(
            keys=[provider_key(name), budget_key(name), slots_key(name)],
            args=[
                repr(now),
                limits.fingerprint,
                repr(limits.window),
                limits.budget,
                cost,
                limits.concurrency,
                repr(now + limits.slot_seconds),
                slot,
                repr(limits.slot_seconds),
            ],
        )
        if verdict == "go":
            return Pass(slot)
        return Refused(verdict, float(wait))

    async def leave(
        self, name: str, permit: Pass, report: Report, limits: Limits, now: float
    ) -> None:
        """Free the slot and record the request for health, the breaker and the stats."""
        await self._leave(
            keys=[provider_key(name), slots_key(name), stats_key(name)],
            args=[
                repr(now),
                permit.slot,
                report.result,
                report.message,
                limits.breaker_after,
                repr(limits.breaker_cooldown),
                bisect_left(LATENCY_BOUNDS, report.latency),
                repr(report.latency),
                report.kind,
                report.status or "",
            ],
        )

    async def used(self, windows: Mapping[str, float], now: float) -> dict[str, float]:
        """Requests counted against each provider's budget now (by its window's length), read
        as the entry script reckons them, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in windows:
                pipe.hgetall(budget_key(name))
            raws: list[dict[str, str]] = await pipe.execute()
        return {
            name: _used(raw, window, now)
            for (name, window), raw in zip(windows.items(), raws, strict=True)
        }


def _used(raw: Mapping[str, str], window: float, now: float) -> float:
    current = math.floor(now / window)
    seen = int(raw.get("w", -1))
    cur, prev = float(raw.get("cur", 0)), float(raw.get("prev", 0))
    if seen != current:
        cur, prev = 0.0, cur if seen == current - 1 else 0.0
    into = (now - current * window) / window
    return prev * (1 - into) + cur
