"""Retries with exponential backoff and full jitter, ``Retry-After``, ban waits, and a request pacer.

The loop here knows nothing about ccxt or httpx: each source supplies a ``classify`` function that
turns an exception into a :class:`Failure` (what kind, and how long the venue asked us to wait).
The policy then decides:

============  ==========================================================================
kind          what happens
============  ==========================================================================
TRANSIENT     timeout, 5xx, dropped connection: sleep ``full_jitter(attempt)``, retry
RATE_LIMITED  429 / venue rate-limit code: sleep ``max(Retry-After, full_jitter)``, retry;
              the shared :class:`Pacer` is held for the same time so sibling clients wait too,
              and the :class:`~.limiter.SharedLimiter` blocks the venue for every process
BANNED        418 / 403 ban: recorded in the shared limiter (every process stops sending for
              the ban period); wait out ``Retry-After`` when it fits ``max_ban_wait_s``,
              otherwise fail at once (waiting days for a ban to lift helps nobody)
MALFORMED     non-JSON, truncated or mis-shaped body: retry ``max_malformed_retries`` times
PERMANENT     bad symbol / bad request / unknown venue error: fail at once
============  ==========================================================================

Every value a venue sends that changes timing is bounded: a ``Retry-After`` (or reset timestamp) that
is negative, not finite or not a number is treated as absent, with a log line; a rate-limit wait is
capped at ``max_retry_after_s``, and what one answer may block the venue for in every process at
``max_ban_s`` (both logged when they bite). No sleep here is ever longer than
``max(max_retry_after_s, max_ban_wait_s, max_delay_s)``.

Every retry counts against ``max_retries`` and every wait against ``total_budget_s``; when either
runs out the last error is raised as :class:`RetryExhausted`, which the sources turn into a
:class:`~marketdata_assets.venues.base.VenueError` naming venue, instrument and day. An attempt
that the shared limiter refuses because another process recorded a ban longer than
``max_ban_wait_s`` (:class:`~.limiter.VenueBlocked`) fails the same way, without a request.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import TypeVar

from marketdata_assets.venues.limiter import SharedLimiter, VenueBlocked

T = TypeVar("T")
log = logging.getLogger(__name__)


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    BANNED = "banned"
    MALFORMED = "malformed"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Failure:
    """How a source classified one failed attempt."""

    kind: FailureKind
    retry_after_s: float | None = None  # what the venue asked for (Retry-After), if anything
    detail: str = ""  # e.g. "HTTP 429", "retCode 10006"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit a nightly backfill; tests shrink the delays."""

    max_retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    total_budget_s: float = 300.0  # waits + attempt time of one call before giving up
    max_ban_wait_s: float = 180.0  # longest ban (Retry-After of a 418/403) we are willing to sit out
    max_malformed_retries: int = 2
    # a rate-limit answer (429) asks for the rest of the venue's window (<= 60 s on every venue we
    # know): a longer Retry-After is capped here, so a hostile or broken header cannot park a run
    max_retry_after_s: float = 300.0
    # the longest block one ban answer may record for every process (Binance's longest IP ban: 3 days)
    max_ban_s: float = 3 * 86_400.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.max_malformed_retries < 0:
            raise ValueError("retry counts must be >= 0")
        if not self.max_retry_after_s > 0 or not self.max_ban_s > 0:
            raise ValueError("max_retry_after_s and max_ban_s must be > 0")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")
        if self.total_budget_s <= 0 or self.max_ban_wait_s < 0:
            raise ValueError("total_budget_s must be > 0 and max_ban_wait_s >= 0")

    def backoff_cap(self, retry: int) -> float:
        """Upper bound of the jittered delay before retry number ``retry`` (0-based)."""
        return min(self.max_delay_s, self.base_delay_s * (2.0 ** max(retry, 0)))

    def backoff(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter (AWS architecture blog): uniform in ``[0, min(max_delay, base * 2**retry)]``."""
        return self.backoff_cap(retry) * rng()

    def delay_for(self, failure: Failure, retry: int, rng: Callable[[], float] = random.random) -> float:
        """How long to wait before retrying ``failure`` (retry number ``retry``, 0-based)."""
        jitter = self.backoff(retry, rng)
        if failure.kind in (FailureKind.RATE_LIMITED, FailureKind.BANNED) and failure.retry_after_s:
            cap = self.max_retry_after_s if failure.kind is FailureKind.RATE_LIMITED else self.max_ban_wait_s
            return max(_capped(failure, float(failure.retry_after_s), cap, "wait", "waiting"), jitter)
        return jitter

    def block_for(self, failure: Failure, default_s: float) -> float:
        """How long one rate-limit / ban answer blocks the venue for every process: what it asked
        (``default_s`` when it asked nothing), capped at ``max_retry_after_s`` / ``max_ban_s``."""
        seconds = failure.retry_after_s if failure.retry_after_s is not None else default_s
        cap = self.max_ban_s if failure.kind is FailureKind.BANNED else self.max_retry_after_s
        return _capped(failure, seconds, cap, "block for", "blocking for")


def _capped(failure: Failure, seconds: float, cap: float, asked_to: str, doing: str) -> float:
    """``seconds`` a venue asked for, at most ``cap`` (said in the log when it asked for more)."""
    if seconds > cap:
        log.warning(
            "%s: the venue asked to %s %.1fs; %s the cap of %.1fs instead",
            failure.detail,
            asked_to,
            seconds,
            doing,
            cap,
        )
        return cap
    return seconds


class RetryExhausted(Exception):
    """The call failed for good: a permanent error, a ban too long to wait, or retries/budget spent."""

    def __init__(self, reason: str, last_error: BaseException, failure: Failure, attempts: int) -> None:
        self.reason = reason
        self.last_error = last_error
        self.failure = failure
        self.attempts = attempts
        super().__init__(f"{reason} after {attempts} attempt(s): {type(last_error).__name__}: {last_error}")


RetryCallback = Callable[[int, Failure, float, BaseException], None]


def call_with_retry(
    fn: Callable[[], T],
    *,
    classify: Callable[[BaseException], Failure],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    on_retry: RetryCallback | None = None,
    pacer: Pacer | None = None,
    limiter: SharedLimiter | None = None,
) -> T:
    """Call ``fn`` until it succeeds or the policy gives up (then raise :class:`RetryExhausted`).

    ``on_retry(retry_number, failure, delay_s, exc)`` runs before each wait. Time spent waiting is
    accounted from the delays themselves, so an injected no-op ``sleep`` still exhausts the budget.
    ``pacer``, if given, paces every attempt and is held through rate-limit waits. ``limiter``, if
    given, records every rate-limit / ban answer for all processes (:meth:`SharedLimiter.block` for
    the Retry-After, else ``base_delay_s`` after a rate limit or the venue's documented ban period
    after a ban), whether or not this call retries; the sources take each request's budget from it
    at the HTTP layer.
    """
    retries = malformed = attempts = 0
    spent = 0.0
    while True:
        if pacer is not None:
            pacer.wait()
        attempts += 1
        started = monotonic()
        try:
            return fn()
        except VenueBlocked as exc:
            failure = Failure(FailureKind.BANNED, exc.seconds_left, f"blocked: {exc.reason}")
            raise RetryExhausted(
                f"not sending: {exc.venue} is blocked for {exc.seconds_left:.0f}s more, longer than "
                f"max_ban_wait_s={policy.max_ban_wait_s:.0f}s",
                exc,
                failure,
                attempts,
            ) from exc
        except Exception as exc:  # noqa: BLE001 - classified below; permanent ones re-raised wrapped
            spent += max(monotonic() - started, 0.0)
            failure = classify(exc)
            if limiter is not None:
                _share_limit_answer(limiter, failure, policy)
            if failure.kind is FailureKind.PERMANENT:
                raise RetryExhausted("permanent error", exc, failure, attempts) from exc
            if failure.kind is FailureKind.BANNED:
                wait = failure.retry_after_s
                if wait is None:
                    raise RetryExhausted(
                        "banned by the venue (no Retry-After given)", exc, failure, attempts
                    ) from exc
                if wait > policy.max_ban_wait_s:
                    raise RetryExhausted(
                        f"banned by the venue for {wait:.0f}s, longer than max_ban_wait_s="
                        f"{policy.max_ban_wait_s:.0f}s",
                        exc,
                        failure,
                        attempts,
                    ) from exc
            if failure.kind is FailureKind.MALFORMED:
                malformed += 1
                if malformed > policy.max_malformed_retries:
                    raise RetryExhausted("malformed responses", exc, failure, attempts) from exc
            if retries >= policy.max_retries:
                raise RetryExhausted(
                    f"gave up after {policy.max_retries} retries", exc, failure, attempts
                ) from exc
            delay = policy.delay_for(failure, retries, rng)
            if spent + delay > policy.total_budget_s:
                raise RetryExhausted(
                    f"retry budget of {policy.total_budget_s:.0f}s spent (next wait {delay:.1f}s)",
                    exc,
                    failure,
                    attempts,
                ) from exc
            if on_retry is not None:
                on_retry(retries, failure, delay, exc)
            retries += 1
            spent += delay
            if pacer is not None and failure.kind in (FailureKind.RATE_LIMITED, FailureKind.BANNED):
                pacer.hold(delay)
            if delay > 0:
                sleep(delay)


def _share_limit_answer(limiter: SharedLimiter, failure: Failure, policy: RetryPolicy) -> None:
    """Tell every process about a rate-limit or ban answer, before deciding whether to retry."""
    if failure.kind is FailureKind.BANNED:
        seconds = (
            policy.block_for(failure, limiter.budget.ban_s) if failure.retry_after_s else limiter.budget.ban_s
        )
    elif failure.kind is FailureKind.RATE_LIMITED:
        seconds = policy.block_for(failure, policy.base_delay_s)
    else:
        return
    if seconds and seconds > 0:
        limiter.block(seconds, f"{failure.kind.value}: {failure.detail}".rstrip(": "))


def parse_retry_after(
    headers: Mapping[str, str] | None, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), else ``None``.

    A value that is negative, not finite (``inf``, ``nan``) or neither a number nor an HTTP date is
    treated as absent, with a log line; a date in the past means 0. Capping a long wait is the
    policy's job (:meth:`RetryPolicy.delay_for`, :meth:`RetryPolicy.block_for`)."""
    if not headers:
        return None
    value = None
    for key, candidate in headers.items():
        if key.lower() == "retry-after":
            value = str(candidate).strip()
            break
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return checked_wait(seconds, f"Retry-After {value[:40]!r}")
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        moment = None
    if moment is None:
        log.warning("ignoring Retry-After %r: neither seconds nor an HTTP date", value[:40])
        return None
    return max(moment.timestamp() - now(), 0.0)


def checked_wait(seconds: float, what: str) -> float | None:
    """``seconds`` a venue asked to wait, or ``None`` (with a log line) when it is negative or not finite."""
    if not math.isfinite(seconds) or seconds < 0:
        log.warning("ignoring %s: not a finite wait >= 0", what)
        return None
    return seconds


class Pacer:
    """Minimum spacing between requests to one venue, shared by every client in this process.

    ccxt's own throttler spaces the calls of one instance; the pacer also covers several
    instances (threads, or a DVOL client next to a candle client) and, via :meth:`hold`, makes them
    all respect a ``Retry-After`` that one of them received.
    """

    _registry: dict[str, Pacer] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        min_interval_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = min_interval_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    @classmethod
    def shared(cls, key: str, min_interval_s: float) -> Pacer:
        """The process-wide pacer for ``key`` (venue + base URL); the widest spacing asked for wins."""
        with cls._registry_lock:
            pacer = cls._registry.get(key)
            if pacer is None:
                pacer = cls._registry[key] = cls(min_interval_s)
            elif min_interval_s > pacer.min_interval_s:
                pacer.min_interval_s = min_interval_s
            return pacer

    def wait(self) -> float:
        """Block until this caller may send; returns the seconds waited."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.min_interval_s
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)

    def hold(self, seconds: float) -> None:
        """No request may start in the next ``seconds`` (a venue said Retry-After)."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._monotonic() + seconds)
