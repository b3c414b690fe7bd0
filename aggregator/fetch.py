"""Runs one provider over a batch of URLs: the only place that talks to the networks."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import quote, urlencode

import httpx
from redis.exceptions import RedisError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from aggregator.config import ProviderSettings, Settings
from aggregator.gate import Gate, Limits, Pass, Refusal, Refused, Report, limits_for
from aggregator.logs import redact, secret_forms
from aggregator.pools import Pools
from providers.base import Observation, ParseError, Problem, Provider, ProviderRequest, Token

ErrorKind = Literal[
    "request",
    "auth",
    "timeout",
    "connect",
    "http",
    "parse",
    "missing",
    "throttled",
    "rejected",
    "deferred",
]
# Errors worth another attempt after a pause: the network may answer next time.
TRANSIENT: frozenset[ErrorKind] = frozenset({"timeout", "connect"})
# Outcomes that say nothing about whether the network works: they move no breaker.
NEUTRAL: frozenset[ErrorKind] = frozenset({"throttled", "rejected", "request"})
MAX_MESSAGE = 200
log = logging.getLogger(__name__)
# Receives a batch's counts as they arrive (the poller stores them).
Sink = Callable[[dict[str, Observation]], Awaitable[None]]


class Coalescing:
    """A sink that hands on, in one call, the batches that arrived while its last call ran:
    a store call per batch cost more client time than the fetches when many answer at once
    (bench/refresh.py). Each caller returns once its own counts are handed on."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._waiting: dict[str, Observation] = {}
        self._turn = asyncio.Lock()

    async def __call__(self, observations: dict[str, Observation]) -> None:
        self._waiting.update(observations)
        async with self._turn:
            if self._waiting:
                batch, self._waiting = self._waiting, {}
                await self._sink(batch)


# A token is renewed this long before the network says it expires.
TOKEN_MARGIN = 60.0


@dataclass(frozen=True)
class FetchError:
    """Why a URL got no data; the message holds no secret."""

    kind: ErrorKind
    message: str
    status: int | None = None


@dataclass
class FetchOutcome:
    """What each URL got, the error of each that got nothing, and a stop signal if any."""

    observations: dict[str, Observation] = field(default_factory=dict)
    errors: dict[str, FetchError] = field(default_factory=dict)
    problem: Problem | None = None
    # For URLs the gate held back ("deferred"): seconds until the provider may be asked again.
    wait: float | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {url: obs.count for url, obs in self.observations.items()}

    def add(self, other: FetchOutcome) -> None:
        self.observations.update(other.observations)
        self.errors.update(other.errors)
        self.problem = self.problem or other.problem
        waits = [w for w in (self.wait, other.wait) if w is not None]
        self.wait = min(waits) if waits else None


REFUSALS: dict[Refusal, str] = {
    "throttled": "the network asked to wait",
    "rejected": "the network refused the credentials; waiting for new ones",
    "breaker": "the circuit breaker is open after repeated failures",
    "busy": "every request slot is in use",
    "budget": "the request budget is spent for now",
    "unavailable": "Redis did not answer, so the shared limits could not be checked",
}
# How long a provider's URLs wait when Redis could not admit their request.
UNAVAILABLE_WAIT = 5.0


class FetchFailure(Exception):
    """A step of a fetch failed; carries the error every URL of the batch gets."""

    def __init__(self, error: FetchError, problem: Problem | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.problem = problem

    @property
    def transient(self) -> bool:
        status = self.error.status
        return self.error.kind in TRANSIENT or (
            self.error.kind == "http" and status is not None and status >= 500
        )


class Deferred(Exception):
    """The gate held the request back: the URLs stay due and nothing counts as failed."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(f"held back: {refused.reason}")
        self.refused = refused


@dataclass
class RunState:
    """Shared by the batches of one run: the refusal that holds for all of them, once seen."""

    held: Refused | None = None


def scrub(message: str, secrets: Iterable[str]) -> str:
    """Remove every secret, raw or URL-encoded, from a message and cut it short."""
    return redact(message, secret_forms(secrets))[:MAX_MESSAGE]


def chunks(urls: Sequence[str], size: int) -> list[Sequence[str]]:
    return [urls[i : i + size] for i in range(0, len(urls), max(1, size))]


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """The URL with the parameters encoded onto it: given as `params`, httpx would parse a
    batch's long URL twice, the biggest client cost of a 50-URL batch (bench/refresh.py)."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params, quote_via=quote)}"


def throttle_wait(provider: type[Provider], problem: Problem) -> float:
    """How long a throttled provider waits: what the network said, else the provider's default."""
    return problem.retry_after if problem.retry_after is not None else provider.throttle_seconds


def observation(value: int | Observation) -> Observation:
    return value if isinstance(value, Observation) else Observation(value)


class Executor:
    """Sends providers' requests through their pools with timeouts and bounded concurrency."""

    def __init__(self, pools: Pools, settings: Settings, gate: Gate | None = None) -> None:
        self._pools = pools
        self._settings = settings
        # Without a gate (a unit under test) requests go out unlimited and unrecorded.
        self._gate = gate
        self._slots = asyncio.Semaphore(settings.schedule.concurrency)
        # Bearer tokens from providers' auth steps, per provider, with their expiry (monotonic).
        self._tokens: dict[str, tuple[Token, float]] = {}
        # One auth step at a time per provider: concurrent batches wait for its token.
        self._token_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Passes whose release Redis missed: until released, their slots stay taken for every
        # process (up to their expiry, twice the timeout); released once Redis answers again.
        self._unreleased: list[tuple[str, Pass, Report, Limits]] = []

    async def run(
        self, provider: type[Provider], urls: Sequence[str], sink: Sink | None = None
    ) -> FetchOutcome:
        """Fetch every URL in batches of the provider's size; errors are results, not raises.

        `sink` gets each batch's counts as soon as they arrive, so storing overlaps fetching
        and a process that dies mid-run loses only the batches in flight.
        """
        conf = self._settings.provider(provider.name)
        # No more batches in flight than the provider may have requests: the rest wait here
        # instead of all asking the gate (and Redis) at once.
        lanes = asyncio.Semaphore(conf.concurrency or provider.concurrency)
        run = RunState()
        store = Coalescing(sink) if sink is not None else None

        async def lane(batch: Sequence[str]) -> FetchOutcome:
            async with lanes:
                part = await self._batch(provider, conf, batch, run)
            if store is not None and part.observations:
                await store(part.observations)
            return part

        outcome = FetchOutcome()
        for part in await asyncio.gather(*(lane(b) for b in chunks(urls, provider.batch_size))):
            outcome.add(part)
        return outcome

    async def _batch(
        self, provider: type[Provider], conf: ProviderSettings, urls: Sequence[str], run: RunState
    ) -> FetchOutcome:
        try:
            if run.held is not None:
                # The gate said wait for a reason that holds for the whole run: do not ask again.
                raise Deferred(run.held)
            outcome = await self._attempts(provider, conf, urls)
        except Deferred as held:
            refused = run.held = held.refused
            error = FetchError("deferred", f"not asked: {REFUSALS[refused.reason]}")
            # A refused credential is not coming back by itself: no early retry for it.
            wait = None if refused.reason == "rejected" else refused.wait
            outcome = FetchOutcome(errors=dict.fromkeys(urls, error), wait=wait)
        except FetchFailure as failure:
            error = failure.error
            clean = FetchError(error.kind, scrub(error.message, self._secrets()), error.status)
            outcome = FetchOutcome(errors=dict.fromkeys(urls, clean), problem=failure.problem)
            if failure.problem is not None and failure.problem.kind == "throttled":
                outcome.wait = throttle_wait(provider, failure.problem)
        if outcome.problem is not None:
            # Problem messages are stored and shown in health: they must hold no secret either.
            message = scrub(outcome.problem.message, self._secrets())
            outcome.problem = replace(outcome.problem, message=message)
        return outcome

    async def _attempts(
        self, provider: type[Provider], conf: ProviderSettings, urls: Sequence[str]
    ) -> FetchOutcome:
        """Fetch, retrying transient errors with exponential backoff and jitter; never a 4xx."""
        schedule = self._settings.schedule
        retrying = AsyncRetrying(
            stop=stop_after_attempt(schedule.retries + 1),
            wait=wait_exponential_jitter(
                multiplier=schedule.backoff, max=schedule.backoff_max, jitter=schedule.backoff
            ),
            retry=retry_if_exception(lambda e: isinstance(e, FetchFailure) and e.transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._fetch(provider, conf, urls, retry_auth=True)
        raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

    async def _fetch(
        self,
        provider: type[Provider],
        conf: ProviderSettings,
        urls: Sequence[str],
        *,
        retry_auth: bool,
    ) -> FetchOutcome:
        config = conf.values()
        token = await self._token(provider, conf)
        if token is not None:
            config["token"] = token.value
        try:
            request = provider.build_request(urls, conf.base_url, config)
        except ValueError as exc:
            raise FetchFailure(FetchError("request", f"cannot build the request: {exc}")) from exc
        cost = len(urls) if provider.cost_per_url else 1
        async with self._admitted(provider, conf, cost) as report:
            response = await self._send(provider, request, conf)
            if response.status_code == 401 and token is not None and retry_auth:
                # The token may have been revoked early: renew it once before calling it failed.
                self._tokens.pop(provider.name, None)
                report.result = "neutral"
                return await self._fetch(provider, conf, urls, retry_auth=False)
            outcome = self._read(provider, urls, response)
            report.result = "ok"
            return outcome

    def _read(
        self, provider: type[Provider], urls: Sequence[str], response: httpx.Response
    ) -> FetchOutcome:
        """Turn an answer into counts, or into the failure it reports."""
        headers = {k.lower(): v for k, v in response.headers.items()}
        problem = provider.problem(response.status_code, headers, response.content)
        if problem is not None and not response.is_success:
            raise FetchFailure(
                FetchError(problem.kind, problem.message, response.status_code), problem
            )
        if not response.is_success:
            message = f"HTTP {response.status_code} {response.reason_phrase}"
            raise FetchFailure(FetchError("http", message, response.status_code))
        try:
            counts = provider.parse(urls, response.content)
        except ParseError as exc:
            raise FetchFailure(FetchError("parse", str(exc))) from exc
        except Exception as exc:
            # A plugin's bug must cost its own URLs this round, not the whole tick.
            log.exception("%s: parse raised instead of ParseError", provider.name)
            message = f"the provider failed to read the answer ({type(exc).__name__})"
            raise FetchFailure(FetchError("parse", message)) from exc
        # A 2xx can still say "slow down" (Facebook's X-App-Usage): keep its data, heed the signal.
        outcome = FetchOutcome(problem=problem)
        outcome.observations = {u: observation(counts[u]) for u in urls if u in counts}
        self._check_plausible(outcome.observations.values())
        missing = FetchError("missing", "the answer held no count for this URL")
        outcome.errors = {u: missing for u in urls if u not in counts}
        return outcome

    def _check_plausible(self, observations: Iterable[Observation]) -> None:
        """A parse failure for an answer holding a number no page can have: whatever the
        parser made of it, such an answer is broken, and none of its numbers may be stored."""
        most = self._settings.max_count
        for obs in observations:
            for number in (obs.count, *obs.parts.values(), *obs.days.values()):
                if isinstance(number, bool) or not isinstance(number, int):
                    message = f"the answer held {type(number).__name__} {number!r}, not a count"
                    raise FetchFailure(FetchError("parse", message[:MAX_MESSAGE]))
                if not 0 <= number <= most:
                    # str() refuses ints of over 4,300 digits: a number that long needs none.
                    bits = number.bit_length()
                    shown = number if bits < 128 else f"of {bits} bits"
                    message = f"the answer held the count {shown}, outside 0..{most}"
                    raise FetchFailure(FetchError("parse", message[:MAX_MESSAGE]))

    @asynccontextmanager
    async def _admitted(
        self, provider: type[Provider], conf: ProviderSettings, cost: int
    ) -> AsyncIterator[Report]:
        """Hold a pass from the gate for one request and report how it went."""
        report = Report()
        if self._gate is None:
            yield report
            return
        limits = limits_for(provider, self._settings)
        permit = await self._enter(provider.name, cost, limits, conf.timeout)
        started = time.monotonic()
        try:
            yield report
        except FetchFailure as failure:
            report.result = "neutral" if failure.error.kind in NEUTRAL else "failed"
            report.message = scrub(failure.error.message, self._secrets())
            report.kind, report.status = failure.error.kind, failure.error.status
            raise
        finally:
            report.latency = time.monotonic() - started
            try:
                await self._gate.leave(provider.name, permit, report, limits, time.time())
            except RedisError as exc:
                # The answer is in hand; losing it to a Redis blip would waste the request. The
                # slot and the request's record wait for the next time the gate is asked.
                log.warning("%s: could not record the request in Redis: %s", provider.name, exc)
                self._unreleased.append((provider.name, permit, report, limits))

    async def _enter(self, name: str, cost: int, limits: Limits, patience: float) -> Pass:
        """A pass from the gate; waits a little for a free slot, defers on anything else."""
        assert self._gate is not None
        deadline = time.monotonic() + patience
        while True:
            try:
                await self._release_missed()
                verdict = await self._gate.enter(name, cost, limits, time.time())
            except RedisError as exc:
                # Without the shared limits no request may go; the other providers' rounds and
                # this round's counts already in hand must not fail with this one.
                log.warning("%s: the gate could not reach Redis: %s", name, exc)
                raise Deferred(Refused("unavailable", UNAVAILABLE_WAIT)) from exc
            if isinstance(verdict, Pass):
                return verdict
            if verdict.reason != "busy" or time.monotonic() + verdict.wait > deadline:
                raise Deferred(verdict)
            # Jittered, so that workers waiting on the same slots do not ask again in step.
            await asyncio.sleep(verdict.wait * random.uniform(0.5, 1.5))

    async def _release_missed(self) -> None:
        """Free the slots whose release Redis missed, so that they hold nobody back after it
        returns; RedisError while it is still away."""
        assert self._gate is not None
        while self._unreleased:
            missed = self._unreleased.pop()
            try:
                await self._gate.leave(*missed, time.time())
            except RedisError:
                self._unreleased.append(missed)
                raise

    async def _token(self, provider: type[Provider], conf: ProviderSettings) -> Token | None:
        """The provider's bearer token, fetched once and renewed shortly before it expires."""
        async with self._token_locks[provider.name]:
            return await self._fresh_token(provider, conf)

    async def _fresh_token(self, provider: type[Provider], conf: ProviderSettings) -> Token | None:
        cached = self._tokens.get(provider.name)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        request = provider.token_request(conf.base_url, conf.values())
        if request is None:
            return None
        # The auth step is a request to the network like any other: same budget, same breaker.
        async with self._admitted(provider, conf, 1) as report:
            response = await self._send(provider, request, conf)
            if response.status_code in (400, 401, 403):
                message = f"the network refused the credentials (HTTP {response.status_code})"
                problem = Problem("rejected", message)
                raise FetchFailure(FetchError("rejected", message, response.status_code), problem)
            if not response.is_success:
                message = f"auth step: HTTP {response.status_code} {response.reason_phrase}"
                raise FetchFailure(FetchError("auth", message, response.status_code))
            try:
                token = provider.parse_token(response.content)
            except ParseError as exc:
                raise FetchFailure(FetchError("auth", f"auth step: {exc}")) from exc
            report.result = "ok"
        expires = time.monotonic() + max(0.0, token.expires_in - TOKEN_MARGIN)
        self._tokens[provider.name] = (token, expires)
        return token

    async def _send(
        self, provider: type[Provider], request: ProviderRequest, conf: ProviderSettings
    ) -> httpx.Response:
        user_agent = conf.user_agent or self._settings.user_agent
        headers = {"User-Agent": user_agent, **request.headers}
        concurrency = limits_for(provider, self._settings).concurrency
        try:
            async with self._slots:
                # httpx's timeouts bound each read, so a body dripping a byte a second would
                # never end: the whole exchange gets the provider's timeout too.
                async with asyncio.timeout(conf.timeout):
                    return await self._pools.client(provider.name, concurrency).request(
                        request.method,
                        with_query(request.url, request.params),
                        headers=headers,
                        data=dict(request.form) if request.form is not None else None,
                        json=request.json,
                        auth=request.basic_auth,
                        timeout=conf.timeout,
                    )
        except (httpx.TimeoutException, TimeoutError) as exc:
            message = f"no answer within {conf.timeout:g} s"
            raise FetchFailure(FetchError("timeout", message)) from exc
        except httpx.HTTPError as exc:
            raise FetchFailure(FetchError("connect", f"{type(exc).__name__}: {exc}")) from exc

    def _secrets(self) -> list[str]:
        # Every secret flares holds, not only this provider's: an answer may quote anything.
        tokens = [token.value for token, _ in self._tokens.values()]
        return [*self._settings.secret_values(), *tokens]
