"""Per-client-IP rate limits with each venue's real numbers and breach answers.

=========  ==========================================  ===============================================
venue      allowance (x ``limit_scale``; windows x     breach
           ``window_scale``)
=========  ==========================================  ===============================================
binance    6000 request weight per rolling 60 s        HTTP 429 ``-1003`` + ``Retry-After``; a client
           (klines 2, exchangeInfo 20, others 1)       that keeps sending while backing off is banned:
                                                       HTTP 418 + ``Retry-After``, 2 min doubling per
                                                       ban up to 3 days (x ``ban_scale``)
bybit      600 requests per rolling 5 s                HTTP 200 ``retCode 10006``; continuing: HTTP 403
                                                       ban for 10 min (x ``ban_scale``)
okx        per endpoint per rolling 2 s: candles 40,   HTTP 429 ``{"msg":"Too Many Requests",
           history-candles 20, instruments 20, time 10  "code":"50011"}``
deribit    credits: 500 per request, 50 000 max,        HTTP 429 JSON-RPC error 10028
           refilled at 10 000 per second               ``too_many_requests``
=========  ==========================================  ===============================================

"Keeps sending while backing off" = more than ``ban_after_strikes`` further requests before the
announced back-off has passed. Rejected requests do not use allowance. Limits and bans run on the
real monotonic clock, not the simulator's market clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

BINANCE_WEIGHT_LIMIT = 6000
BINANCE_WEIGHTS = {"klines": 2, "exchangeInfo": 20}
BINANCE_BAN_S = 120.0
BINANCE_MAX_BAN_S = 3 * 86400.0
BYBIT_LIMIT = 600
BYBIT_WINDOW_S = 5.0
BYBIT_BAN_S = 600.0
OKX_WINDOW_S = 2.0
OKX_LIMITS = {"candles": 40, "history-candles": 20, "instruments": 20, "time": 10}
OKX_DEFAULT_LIMIT = 20
DERIBIT_COST = 500
DERIBIT_MAX_CREDITS = 50_000
DERIBIT_REFILL_PER_S = 10_000


@dataclass(frozen=True)
class Decision:
    """The limiter's verdict on one request."""

    allowed: bool
    breach: str | None = None  # "429", "418", "10006", "403", "50011", "10028"
    retry_after_s: int | None = None
    used_weight: int | None = None
    ban_until_ms: int | None = None


class SlidingWindow:
    """Costs of accepted requests within the last ``length_s`` seconds."""

    def __init__(self, length_s: float) -> None:
        self.length_s = length_s
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def used(self, now: float) -> int:
        while self.entries and self.entries[0][0] <= now - self.length_s:
            self.total -= self.entries.popleft()[1]
        return self.total

    def add(self, now: float, cost: int) -> None:
        self.entries.append((now, cost))
        self.total += cost

    def seconds_until_room(self, now: float, cost: int, limit: int) -> float:
        """How long until ``cost`` more fits under ``limit``."""
        excess = self.used(now) + cost - limit
        if excess <= 0:
            return 0.0
        freed = 0
        for stamp, entry_cost in self.entries:
            freed += entry_cost
            if freed >= excess:
                return max(0.0, stamp + self.length_s - now)
        return self.length_s


@dataclass
class ClientState:
    windows: dict[str, SlidingWindow] = field(default_factory=dict)
    strikes: int = 0
    backoff_until: float = 0.0
    ban_until: float = 0.0
    ban_until_ms: int = 0
    bans: int = 0
    credits: float = -1.0
    credits_at: float = 0.0


class RateLimiter:
    """Decides, per venue and client IP, whether a request is served or gets the breach answer."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        limit_scale: float = 1.0,
        window_scale: float = 1.0,
        ban_scale: float = 1.0,
        ban_after_strikes: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self.limit_scale = limit_scale
        self.window_scale = window_scale
        self.ban_scale = ban_scale
        self.ban_after_strikes = ban_after_strikes
        self._monotonic = monotonic
        self._wall = wall
        self._clients: dict[tuple[str, str], ClientState] = {}
        self._lock = threading.Lock()

    def scaled(self, limit: int) -> int:
        return max(1, int(round(limit * self.limit_scale)))

    def _state(self, venue: str, ip: str) -> ClientState:
        return self._clients.setdefault((venue, ip), ClientState())

    def reset(self) -> None:
        with self._lock:
            self._clients.clear()

    def check(self, venue: str, endpoint: str, ip: str) -> Decision:
        if not self.enabled:
            return Decision(True)
        with self._lock:
            now = self._monotonic()
            state = self._state(venue, ip)
            if venue == "binance":
                return self._binance(state, endpoint, now)
            if venue == "bybit":
                return self._bybit(state, now)
            if venue == "okx":
                return self._okx(state, endpoint, now)
            if venue == "deribit":
                return self._deribit(state, now)
            return Decision(True)

    # -- venues -------------------------------------------------------------------------------

    def _ban(self, state: ClientState, now: float, seconds: float) -> None:
        state.bans += 1
        state.strikes = 0
        state.ban_until = now + seconds
        state.ban_until_ms = int((self._wall() + seconds) * 1000)

    def _struck_out(self, state: ClientState, now: float) -> bool:
        """Count a request sent during back-off; True when it earns a ban."""
        if now >= state.backoff_until:
            return False
        state.strikes += 1
        return state.strikes > self.ban_after_strikes

    def _binance(self, state: ClientState, endpoint: str, now: float) -> Decision:
        window = state.windows.setdefault("weight", SlidingWindow(60.0 * self.window_scale))
        limit = self.scaled(BINANCE_WEIGHT_LIMIT)
        if now < state.ban_until:
            return Decision(
                False, "418", max(1, math.ceil(state.ban_until - now)), window.used(now), state.ban_until_ms
            )
        weight = BINANCE_WEIGHTS.get(endpoint, 1)
        used = window.used(now)
        if used + weight <= limit:
            window.add(now, weight)
            state.strikes = 0
            return Decision(True, used_weight=used + weight)
        if self._struck_out(state, now):
            seconds = min(BINANCE_BAN_S * 2 ** (state.bans), BINANCE_MAX_BAN_S) * self.ban_scale
            self._ban(state, now, seconds)
            return Decision(False, "418", max(1, math.ceil(seconds)), used, state.ban_until_ms)
        wait = window.seconds_until_room(now, weight, limit)
        state.backoff_until = max(state.backoff_until, now + wait)
        return Decision(False, "429", max(1, math.ceil(wait)), used)

    def _bybit(self, state: ClientState, now: float) -> Decision:
        window = state.windows.setdefault("requests", SlidingWindow(BYBIT_WINDOW_S * self.window_scale))
        if now < state.ban_until:
            return Decision(
                False, "403", max(1, math.ceil(state.ban_until - now)), ban_until_ms=state.ban_until_ms
            )
        limit = self.scaled(BYBIT_LIMIT)
        if window.used(now) + 1 <= limit:
            window.add(now, 1)
            state.strikes = 0
            return Decision(True)
        if self._struck_out(state, now):
            seconds = BYBIT_BAN_S * self.ban_scale
            self._ban(state, now, seconds)
            return Decision(False, "403", max(1, math.ceil(seconds)), ban_until_ms=state.ban_until_ms)
        wait = window.seconds_until_room(now, 1, limit)
        state.backoff_until = max(state.backoff_until, now + wait)
        return Decision(False, "10006", max(1, math.ceil(wait)))

    def _okx(self, state: ClientState, endpoint: str, now: float) -> Decision:
        window = state.windows.setdefault(endpoint, SlidingWindow(OKX_WINDOW_S * self.window_scale))
        limit = self.scaled(OKX_LIMITS.get(endpoint, OKX_DEFAULT_LIMIT))
        if window.used(now) + 1 <= limit:
            window.add(now, 1)
            return Decision(True)
        return Decision(False, "50011", max(1, math.ceil(window.seconds_until_room(now, 1, limit))))

    def _deribit(self, state: ClientState, now: float) -> Decision:
        capacity = DERIBIT_MAX_CREDITS * self.limit_scale
        refill = DERIBIT_REFILL_PER_S * self.limit_scale / self.window_scale
        cost = DERIBIT_COST
        if state.credits < 0:
            state.credits, state.credits_at = capacity, now
        state.credits = min(capacity, state.credits + (now - state.credits_at) * refill)
        state.credits_at = now
        if state.credits >= cost or (capacity < cost and state.credits >= capacity):
            state.credits -= min(cost, state.credits)
            return Decision(True)
        wait = (min(cost, capacity) - state.credits) / refill
        return Decision(False, "10028", max(1, math.ceil(wait)))

    # -- observability ------------------------------------------------------------------------

    def bans_active(self) -> dict[str, list[dict[str, object]]]:
        out: dict[str, list[dict[str, object]]] = {}
        with self._lock:
            now = self._monotonic()
            for (venue, ip), state in self._clients.items():
                if state.ban_until > now:
                    out.setdefault(venue, []).append(
                        {
                            "ip": ip,
                            "until_ms": state.ban_until_ms,
                            "seconds_left": round(state.ban_until - now, 3),
                            "bans": state.bans,
                        }
                    )
        return out
