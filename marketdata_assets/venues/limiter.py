"""One per-venue request budget shared by every process on this machine, and bans every process obeys.

The venues limit and ban by client IP. ccxt's throttler and our :class:`~.retry.Pacer` live inside
one process, so three runs on one machine (the nightly schedule, the gap sensor, a backfill from the
UI) would each spend the whole allowance. The :class:`SharedLimiter` keeps the budget in a small
state file per venue, guarded by ``fcntl.flock``; every HTTP request to the venue reserves its slot
there first (:meth:`SharedLimiter.acquire`), and a rate-limit or ban answer seen by any process is
recorded there (:meth:`SharedLimiter.block`) so that every process stops sending until it is over.

Budgets, in the venue's own units (defaults: the venues' published per-IP limits):

=========  ============================================  =========================================
venue      bucket (limit per window)                     cost of a request
=========  ============================================  =========================================
binance    ``weight``: 6000 request weight / 60 s        klines 2, exchangeInfo 20, others 1
bybit      ``requests``: 600 / 5 s                       1
okx        per endpoint / 2 s: ``history-candles`` 20,   1
           ``candles`` 40, ``instruments`` 20, ``time``
           10, anything else ``other`` 20
deribit    ``requests``: 20 / 1 s (10 000 credits/s      1
           refill at 500 credits per request)
=========  ============================================  =========================================

The *main* bucket (Binance weight, Bybit requests, OKX history-candles, Deribit requests) can be
given another ``limit`` / ``window_s`` (settings ``shared_rate_limit``); the venue's other buckets
scale by the same factors, the way the simulator's ``limit_scale`` / ``window_scale`` do.

How a bucket is spent: requests are spaced evenly (a GCRA / virtual-scheduling token bucket
without burst). With ``usable = limit * safety - max_cost``, a request of cost ``c`` occupies
``c * window_s / usable`` seconds of the bucket's timeline; a caller books the next free slot under
the lock and sleeps until it outside the lock. Any window of ``window_s`` seconds then holds at
most ``usable + max_cost = limit * safety`` units of booked slots, whichever processes booked them;
the remaining ``1 - safety`` of the venue's limit absorbs network and scheduling jitter.

The clock is wall time (``time.time``): shared by all processes and meaningful across reboots.
A booked slot further ahead than :data:`MAX_QUEUE_S` can only come from the clock stepping back,
and is reset.

Scope: one machine. The state lives under :func:`default_state_dir` (``MARKETDATA_STATE_DIR``, else
``$XDG_CACHE_HOME/marketdata_assets/limits``, else ``~/.cache/marketdata_assets/limits``); every
process that talks to the venues from this IP must see the same directory (containers: mount it).
Several machines behind one IP need a shared store (e.g. Redis) or, per machine, a lower ``limit``
plus Dagster pool limits. ``fcntl`` makes this POSIX-only (Linux, macOS).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATE_DIR_ENV = "MARKETDATA_STATE_DIR"
DEFAULT_SAFETY = 0.8
MAX_QUEUE_S = 600.0  # a booked slot further ahead than this means the wall clock stepped back

REAL_HOSTS = {
    "binance": "api.binance.com",
    "bybit": "api.bybit.com",
    "okx": "www.okx.com",
    "deribit": "www.deribit.com",
}


class VenueBlocked(Exception):
    """The venue told some process to stop (ban / Retry-After) for longer than this call may wait."""

    def __init__(self, venue: str, until: float, reason: str, pid: int | None, now: float) -> None:
        self.venue = venue
        self.until = until
        self.reason = reason
        self.pid = pid
        self.seconds_left = max(until - now, 0.0)
        stamp = datetime.fromtimestamp(until, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = f" (recorded by pid {pid})" if pid is not None else ""
        super().__init__(
            f"{venue} is blocked until {stamp}, {self.seconds_left:.0f}s from now, after {reason!r}{who}"
        )


@dataclass(frozen=True)
class Bucket:
    """One allowance of the venue: ``limit`` units per rolling ``window_s`` seconds."""

    limit: float
    window_s: float

    def scaled(self, limit_factor: float, window_factor: float) -> Bucket:
        return Bucket(self.limit * limit_factor, self.window_s * window_factor)


@dataclass(frozen=True)
class VenueBudget:
    """Which bucket a venue endpoint draws from and at what cost; see the module table."""

    venue: str
    buckets: Mapping[str, Bucket]
    routes: Mapping[str, tuple[str, float]]  # endpoint (last URL path segment) -> (bucket, cost)
    default_route: tuple[str, float]
    main_bucket: str
    safety: float = DEFAULT_SAFETY
    ban_s: float = 0.0  # ban period to assume when a ban answer names none (Bybit's 403: 10 min)
    _max_costs: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.safety <= 1:
            raise ValueError(f"{self.venue}: safety must be in (0, 1], got {self.safety}")
        max_costs: dict[str, float] = {}
        for bucket, cost in (*self.routes.values(), self.default_route):
            if bucket not in self.buckets:
                raise ValueError(f"{self.venue}: route to unknown bucket {bucket!r}")
            max_costs[bucket] = max(max_costs.get(bucket, 0.0), cost)
        for name, bucket in self.buckets.items():
            if bucket.window_s <= 0 or self._usable(bucket, max_costs.get(name, 1.0)) <= 0:
                raise ValueError(
                    f"{self.venue}: rate limit {name} = {bucket.limit:g} per {bucket.window_s:g}s leaves "
                    f"no budget at safety {self.safety:g} (need limit * safety > {max_costs.get(name, 1.0):g}, "
                    "the largest single request)"
                )
        object.__setattr__(self, "_max_costs", max_costs)

    def _usable(self, bucket: Bucket, max_cost: float) -> float:
        return bucket.limit * self.safety - max_cost

    def route(self, endpoint: str) -> tuple[str, float]:
        """``(bucket name, cost)`` of one request to ``endpoint``."""
        return self.routes.get(endpoint, self.default_route)

    def seconds_per_unit(self, bucket_name: str) -> float:
        """Timeline a unit of cost occupies in ``bucket_name``."""
        bucket = self.buckets[bucket_name]
        return bucket.window_s / self._usable(bucket, self._max_costs.get(bucket_name, 1.0))

    def with_limits(
        self, limit: float | None = None, window_s: float | None = None, safety: float | None = None
    ) -> VenueBudget:
        """This budget with the main bucket at ``limit`` per ``window_s`` (others scaled alike)."""
        main = self.buckets[self.main_bucket]
        lf = (limit / main.limit) if limit is not None else 1.0
        wf = (window_s / main.window_s) if window_s is not None else 1.0
        if lf <= 0 or wf <= 0:
            raise ValueError(f"{self.venue}: limit and window_s must be positive")
        return replace(
            self,
            buckets={name: b.scaled(lf, wf) for name, b in self.buckets.items()},
            safety=self.safety if safety is None else safety,
        )


def _budget(
    venue: str, buckets: dict[str, Bucket], routes: dict[str, tuple[str, float]], **kw: Any
) -> VenueBudget:
    return VenueBudget(venue=venue, buckets=buckets, routes=routes, **kw)


DOCUMENTED_BUDGETS: dict[str, VenueBudget] = {
    "binance": _budget(
        "binance",
        {"weight": Bucket(6000, 60.0)},
        {"klines": ("weight", 2), "uiKlines": ("weight", 2), "exchangeInfo": ("weight", 20)},
        default_route=("weight", 1),
        main_bucket="weight",
        ban_s=120.0,  # 418: 2 min for a first offence, doubling up to 3 days
    ),
    "bybit": _budget(
        "bybit",
        {"requests": Bucket(600, 5.0)},
        {},
        default_route=("requests", 1),
        main_bucket="requests",
        ban_s=600.0,  # 403 "access too frequent": at least 10 min, no Retry-After
    ),
    "okx": _budget(
        "okx",
        {
            "history-candles": Bucket(20, 2.0),
            "candles": Bucket(40, 2.0),
            "instruments": Bucket(20, 2.0),
            "time": Bucket(10, 2.0),
            "other": Bucket(20, 2.0),
        },
        {name: (name, 1) for name in ("history-candles", "candles", "instruments", "time")},
        default_route=("other", 1),
        main_bucket="history-candles",
    ),
    "deribit": _budget(
        "deribit",
        # 500 credits per request, 10 000 credits/s refill, 50 000 max: 20 requests per second is
        # the sustained rate; a 1 s window never holds more than the 50 000-credit bucket allows.
        {"requests": Bucket(20, 1.0)},
        {},
        default_route=("requests", 1),
        main_bucket="requests",
    ),
}


def documented_budget(
    venue: str,
    *,
    limit: float | None = None,
    window_s: float | None = None,
    safety: float | None = None,
) -> VenueBudget:
    """The venue's published limits, optionally with another main-bucket ``limit`` / ``window_s``."""
    if venue not in DOCUMENTED_BUDGETS:
        raise ValueError(
            f"no rate budget for venue {venue!r}; expected one of {', '.join(DOCUMENTED_BUDGETS)}"
        )
    return DOCUMENTED_BUDGETS[venue].with_limits(limit, window_s, safety)


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``MARKETDATA_STATE_DIR``, else ``$XDG_CACHE_HOME/marketdata_assets/limits``, else ``~/.cache/...``."""
    env = os.environ if environ is None else environ
    explicit = env.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "marketdata_assets" / "limits"


def limiter_key(venue: str, base_url: str | None) -> str:
    """State file name: the venue for the real exchange, ``venue@host_port_prefix`` for anything else
    (each simulator instance has limits of its own)."""
    if base_url is None:
        return venue
    parts = urlsplit(base_url)
    if parts.hostname == REAL_HOSTS.get(venue) and parts.path.strip("/") == "":
        return venue
    where = f"{parts.hostname or 'host'}_{parts.port or parts.scheme}{parts.path.rstrip('/')}"
    return f"{venue}@" + re.sub(r"[^A-Za-z0-9._-]+", "_", where)


def endpoint_of(url: str) -> str:
    """The last path segment of a request URL (``.../api/v3/klines?x=1`` -> ``klines``)."""
    path = urlsplit(url).path.rstrip("/")
    return path.rsplit("/", 1)[-1]


@dataclass
class _State:
    slots: dict[str, float] = field(default_factory=dict)  # bucket -> next free slot (epoch s)
    blocked_until: float = 0.0
    blocked_reason: str = ""
    blocked_by_pid: int | None = None
    granted: int = 0
    dirty: bool = False

    @classmethod
    def parse(cls, raw: bytes) -> _State:
        try:
            data = json.loads(raw) if raw.strip() else {}
            return cls(
                slots={str(k): float(v) for k, v in dict(data.get("slots", {})).items()},
                blocked_until=float(data.get("blocked_until", 0.0)),
                blocked_reason=str(data.get("blocked_reason", "")),
                blocked_by_pid=data.get("blocked_by_pid"),
                granted=int(data.get("granted", 0)),
            )
        except (ValueError, TypeError, AttributeError):
            return cls(dirty=True)  # a torn write (a process killed mid-write): start afresh

    def dump(self) -> bytes:
        data = {
            "slots": self.slots,
            "blocked_until": self.blocked_until,
            "blocked_reason": self.blocked_reason,
            "blocked_by_pid": self.blocked_by_pid,
            "granted": self.granted,
        }
        return json.dumps(data, sort_keys=True).encode()


@dataclass(frozen=True)
class Grant:
    """One request's permission: the slot it was booked for and how long the caller waited."""

    slot: float
    waited_s: float
    bucket: str
    cost: float


class SharedLimiter:
    """The per-venue budget and ban state that every process on this machine shares.

    Thread- and process-safe: each operation opens the state file and holds an exclusive
    ``flock`` on it (flock locks belong to the open file, so threads of one process and forked
    children exclude each other too).
    """

    def __init__(
        self,
        budget: VenueBudget,
        key: str | None = None,
        state_dir: str | Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budget = budget
        self.venue = budget.venue
        self.key = key or budget.venue
        if not re.fullmatch(r"[A-Za-z0-9@._-]+", self.key):
            raise ValueError(f"limiter key {self.key!r} is not a safe file name")
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.path = self.state_dir / f"{self.key}.json"
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SharedLimiter({self.key!r}, {str(self.path)!r})"

    @classmethod
    def for_venue(
        cls,
        venue: str,
        base_url: str | None = None,
        *,
        limit: float | None = None,
        window_s: float | None = None,
        safety: float | None = None,
        state_dir: str | Path | None = None,
    ) -> SharedLimiter:
        """The limiter of ``venue`` at ``base_url`` with its documented (or the given) limits."""
        budget = documented_budget(venue, limit=limit, window_s=window_s, safety=safety)
        return cls(budget, limiter_key(venue, base_url), state_dir)

    # -- the two operations the sources use ------------------------------------------------------

    def acquire(self, endpoint: str, *, max_block_wait_s: float = math.inf) -> Grant:
        """Wait for any recorded block to pass, then book and wait for this request's slot.

        A block longer than ``max_block_wait_s`` raises :class:`VenueBlocked` at once instead of
        sleeping (waiting days for a ban to lift helps nobody).
        """
        bucket, cost = self.budget.route(endpoint)
        step = cost * self.budget.seconds_per_unit(bucket)
        waited = 0.0
        while True:
            slot = None
            with self._locked() as state:
                now = self._clock()
                if state.blocked_until > now:
                    if state.blocked_until - now > max_block_wait_s:
                        raise VenueBlocked(
                            self.venue, state.blocked_until, state.blocked_reason, state.blocked_by_pid, now
                        )
                    wait = state.blocked_until - now
                else:
                    nxt = state.slots.get(bucket, 0.0)
                    if nxt > now + MAX_QUEUE_S:
                        nxt = now
                    slot = max(now, nxt)
                    state.slots[bucket] = slot + step
                    state.granted += 1
                    state.dirty = True
                    wait = slot - now
            if wait > 0:
                self._sleep(wait)
                waited += wait
            if slot is None:
                continue  # the block should be over now: look again
            if wait > 0 and self.blocked_until() > self._clock():
                continue  # a ban arrived while this slot was pending: the slot is forfeit
            return Grant(slot=slot, waited_s=waited, bucket=bucket, cost=cost)

    def block(self, seconds: float, reason: str) -> float:
        """No process may send to this venue for ``seconds`` (a ban or Retry-After); returns the end."""
        with self._locked() as state:
            until = self._clock() + max(seconds, 0.0)
            if until > state.blocked_until:
                state.blocked_until = until
                state.blocked_reason = reason
                state.blocked_by_pid = os.getpid()
                state.dirty = True
            return state.blocked_until

    # -- inspection ------------------------------------------------------------------------------

    def blocked_until(self) -> float:
        """Epoch seconds until which sending is blocked (0 when never)."""
        with self._locked(shared=True) as state:
            return state.blocked_until

    def snapshot(self) -> dict[str, Any]:
        """The shared state as stored (slots, block, requests granted so far)."""
        with self._locked(shared=True) as state:
            return json.loads(state.dump())

    @contextmanager
    def _locked(self, *, shared: bool = False) -> Iterator[_State]:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as exc:
            raise OSError(
                f"cannot open the shared rate-limit state {self.path} ({exc.strerror}); set "
                f"{STATE_DIR_ENV} to a writable directory every process on this machine can see"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            raw = b""
            while chunk := os.read(fd, 65536):
                raw += chunk
            state = _State.parse(raw)
            yield state
            if state.dirty and not shared:
                data = state.dump()
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
        finally:
            os.close(fd)  # releases the lock


def resolve_limiter(
    shared_limiter: SharedLimiter | bool, venue: str, base_url: str | None
) -> SharedLimiter | None:
    """What a source's ``shared_limiter`` argument means: ``True`` = the venue's documented budget
    under :func:`default_state_dir`, ``False`` = none (this process paces itself only)."""
    if isinstance(shared_limiter, SharedLimiter):
        return shared_limiter
    if shared_limiter is True:
        return SharedLimiter.for_venue(venue, base_url)
    if shared_limiter is False:
        return None
    raise TypeError(f"shared_limiter must be a SharedLimiter or a bool, got {type(shared_limiter).__name__}")


def limiter_from_settings(
    venue: str, cfg: Any, *, state_dir: str | Path | None = None
) -> SharedLimiter | bool:
    """The ``shared_limiter`` argument for a source from its settings (``VenueSettings`` /
    ``DvolSettings``: ``base_url`` and ``shared_rate_limit``); ``False`` when it is disabled."""
    limits = getattr(cfg, "shared_rate_limit", None)
    base_url = getattr(cfg, "base_url", None)
    if limits is None:
        return shared_limiter_for(venue, base_url, state_dir=state_dir)
    return shared_limiter_for(
        venue,
        base_url,
        enabled=limits.enabled,
        limit=limits.limit,
        window_s=limits.window_s,
        safety=limits.safety,
        state_dir=state_dir,
    )


def shared_limiter_for(
    venue: str,
    base_url: str | None,
    *,
    enabled: bool = True,
    limit: float | None = None,
    window_s: float | None = None,
    safety: float | None = None,
    state_dir: str | Path | None = None,
) -> SharedLimiter | bool:
    """The ``shared_limiter`` argument of a source: the venue's machine-wide budget at ``base_url`` with
    its published (or the given) limits, or ``False`` when sharing is disabled."""
    if not enabled:
        return False
    return SharedLimiter.for_venue(
        venue, base_url, limit=limit, window_s=window_s, safety=safety, state_dir=state_dir
    )
