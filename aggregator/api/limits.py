"""What a read may make flares do: track a page on first read, on an allowed domain only, at
most FLARES_LIMITS__NEW_PER_CLIENT new pages a minute per client and NEW_PER_DOMAIN per domain,
and no more than MAX_PER_DOMAIN such pages on a domain or MAX_TOTAL tracked pages in all.

A client is its address as the share links resolve it (FLARES_TRUSTED_PROXIES), hashed with the
share salt before it reaches Redis: neither stored nor logged in clear.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request

from aggregator.api.errors import ApiError
from aggregator.api.models import ErrorBody
from aggregator.runtime import Runtime
from aggregator.urls import host_of

DAY_SECONDS = 86_400
MINUTE = 60
Limit = Literal["new_per_client", "new_per_domain", "max_per_domain", "max_total"]
LIMIT_ERRORS: dict[int | str, dict[str, object]] = {
    403: {
        "model": ErrorBody,
        "description": "Reads may add no more pages (the body names the cap)",
    },
    429: {
        "model": ErrorBody,
        "description": "Too many new pages a minute from this client or on this domain "
        "(the body names the limit; see Retry-After)",
    },
}


class LimitReached(ApiError):
    """A read would have tracked a page beyond a limit: 429 for a rate, 403 for a cap."""

    def __init__(self, limit: Limit, value: int, message: str, retry_after: int | None) -> None:
        rate = retry_after is not None
        detail = {
            "limit": limit,
            "setting": f"FLARES_LIMITS__{limit.upper()}",
            "value": value,
            "message": message,
        }
        headers = {"Retry-After": str(retry_after)} if rate else None
        error = "too many new urls" if rate else "too many tracked urls"
        super().__init__(429 if rate else 403, error, detail, headers)
        self.limit = limit
        # What a badge says instead: it shows in a page, where a status code would not.
        self.badge = "rate limited" if rate else "limit reached"


def client_address(request: Request, trusted_proxies: int) -> str:
    """The socket peer; behind `trusted_proxies` proxies, the X-Forwarded-For entry the
    outermost of them added (entries further left are whatever the client sent)."""
    if trusted_proxies:
        hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return request.client.host if request.client else ""


async def day_salt(runtime: Runtime, day: int) -> str:
    """FLARES_SHARE_SALT, else the day's random salt that Redis keeps for two days."""
    configured = runtime.settings.share_salt
    if configured is not None:
        return configured.get_secret_value()
    return await runtime.store.share_salt(day)


def client_hash(salt: str, address: str) -> str:
    """A client's name in Redis: nobody without the salt can tell whose address it was."""
    key = hashlib.blake2b(salt.encode(), digest_size=32, person=b"flares-limits").digest()
    return hashlib.blake2b(address.encode(), key=key, digest_size=16).hexdigest()


def allowed_site(url: str, allowed: list[str]) -> str | None:
    """The most specific allowed domain that the URL's host is, or is a subdomain of."""
    host = host_of(url)
    matches = [d for d in allowed if host == d or host.endswith("." + d)]
    return max(matches, key=len) if matches else None


@dataclass
class Admission:
    """The pages that one request's reads may track; a refusal holds for the rest of the
    request without asking Redis again."""

    runtime: Runtime
    address: str
    refused: dict[str, LimitReached] = field(default_factory=dict)

    async def track(self, url: str) -> bool:
        """Track an untracked canonical URL if a read may: False when it is on no allowed
        domain; LimitReached when a limit stops it."""
        site = allowed_site(url, self.runtime.settings.allowed_domains)
        if site is None:
            return False
        # One client's refusal holds for every domain; a domain's for that domain only.
        for scope in ("", site):
            if scope in self.refused:
                raise self.refused[scope]
        now = time.time()
        try:
            await self._admit(site, now)
        except LimitReached as exc:
            self.refused["" if exc.limit == "new_per_client" else site] = exc
            raise
        store = self.runtime.store
        if not await store.track(url, now):
            # Another read tracked it meanwhile: it does not count twice against the domain.
            await store.release_on_domain(site)
        return True

    async def _admit(self, site: str, now: float) -> None:
        limits, store = self.runtime.settings.limits, self.runtime.store
        minute = int(now // MINUTE)
        retry = max(1, math.ceil((minute + 1) * MINUTE - now))
        salt = await day_salt(self.runtime, int(now // DAY_SECONDS))
        added = await store.count_new_url("c", client_hash(salt, self.address), minute)
        if added > limits.new_per_client:
            message = f"this client had {limits.new_per_client} new pages tracked this minute"
            raise LimitReached("new_per_client", limits.new_per_client, message, retry)
        if await store.count_new_url("d", site, minute) > limits.new_per_domain:
            message = f"{site} had {limits.new_per_domain} new pages tracked this minute"
            raise LimitReached("new_per_domain", limits.new_per_domain, message, retry)
        if await store.tracked_count() >= limits.max_total:
            message = f"flares tracks {limits.max_total} pages, its limit; reads add no more"
            raise LimitReached("max_total", limits.max_total, message, None)
        if not await store.add_on_domain(site, limits.max_per_domain):
            message = f"reads have added {limits.max_per_domain} pages on {site}, its limit"
            raise LimitReached("max_per_domain", limits.max_per_domain, message, None)
