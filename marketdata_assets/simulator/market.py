"""The simulated market: deterministic synthetic candles and DVOL, replayed recordings, and selection.

Synthetic model (per seed; any minute of any day is computed on demand, nothing is stored):

* **Daily anchors.** Per symbol, the log day-open price follows a mean-reverting daily walk
  (Ornstein-Uhlenbeck, half-life one year) around the symbol's reference price, pinned to that
  price on 2024-01-01; a slow AR(1) daily volatility regime scales each day's moves (volatility
  clustering across days). The walk is shared by every venue, so BTC/USDT agrees across venues.
* **Intraday path.** A day is a Brownian bridge from its day-open anchor to the next day's, in
  four sub-steps per minute, with an intraday AR(1) log-volatility (clustering within the day)
  times a seasonal profile (Asia open, busier EU morning, busiest US hours; quieter weekends).
  Each venue adds its own tiny noise to the path (never at day boundaries), so within a day a
  minute's close is the next minute's open and a day's last close is the next day's open.
* **Candles.** Open/close are the path at the minute's ends, high/low the extremes of its
  sub-steps; prices are rounded to the venue's tick (so ``high >= max(open, close)``,
  ``low <= min(open, close)``, all ``> 0``); volume follows activity and the size of the move,
  rounded to the lot step. A minute has no trade with the symbol's ``no_trade_rate`` (more often
  in quiet hours): Binance then shows a zero-volume filler (``o=h=l=c=`` previous close), Bybit and
  OKX omit the minute.
* **Still-open candle.** The minute containing "now" is served partially filled: its close has
  travelled ``f`` of the way from open to the final close, high/low ``f`` of the way to theirs,
  volume ``f`` of the final (``f`` = elapsed fraction of the minute). Nothing after now exists.
* **DVOL** is the same machinery on a volatility level (mean-reverting around 55 for BTC, 65 for
  ETH, half-life 30 days, two decimals), from 2021-03-24 on.

Every array is derived from a hash of ``(seed, venue, symbol, day)``; a few recent days stay in
an LRU cache so a day served over many pages is generated once.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Protocol

import numpy as np

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.universe import DVOL_FIRST_DAY

from .config import SymbolSpec

SUBSTEPS = 4
MINUTES = 1440
REFERENCE_DAY = date(2024, 1, 1)
WALK_FIRST_DAY = date(2010, 1, 1)
WALK_LAST_DAY = date(2060, 1, 1)

Window = tuple[int, int]  # [start_ms, end_ms)


def epoch_day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def day_of_ms(ms: int) -> int:
    return ms // DAY_MS


def derive_seed(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_seed(*parts)))


def decimals_of(step: float) -> int:
    """Decimal places of a tick/lot step: 0.01 -> 2, 1 -> 0, 1e-8 -> 8."""
    exponent = Decimal(repr(float(step))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


class LRU:
    """A small thread-safe LRU cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], object]) -> object:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = make()
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# -- candles -------------------------------------------------------------------------------------


@dataclass
class Candles:
    """1-minute candles of one (venue, symbol), ascending by open time (``ts``, epoch ms)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray
    taker_base: np.ndarray
    taker_quote: np.ndarray
    price_decimals: int = 8
    volume_decimals: int = 8

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("price_decimals", "volume_decimals"))

    def take(self, index: np.ndarray | slice) -> Candles:
        arrays = {name: np.asarray(getattr(self, name)[index]) for name in self.array_names()}
        return Candles(**arrays, price_decimals=self.price_decimals, volume_decimals=self.volume_decimals)

    def copy(self) -> Candles:
        return self.take(slice(None))

    @classmethod
    def empty(cls, price_decimals: int = 8, volume_decimals: int = 8) -> Candles:
        arrays = {
            name: np.zeros(0, dtype=np.int64 if name in ("ts", "trades") else np.float64)
            for name in cls.array_names()
        }
        return cls(**arrays, price_decimals=price_decimals, volume_decimals=volume_decimals)

    @classmethod
    def concat(cls, parts: Sequence[Candles], price_decimals: int, volume_decimals: int) -> Candles:
        if not parts:
            return cls.empty(price_decimals, volume_decimals)
        arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.array_names()}
        return cls(**arrays, price_decimals=price_decimals, volume_decimals=volume_decimals)


class CandleSource(Protocol):
    """Where the candles of one (venue, symbol) come from."""

    price_decimals: int
    volume_decimals: int
    first_ms: int
    last_ms: int | None

    def day(self, day: int) -> Candles: ...

    def partial(self, full: Candles, fraction: float) -> Candles: ...


# Seasonal activity per minute of the UTC day: Asia open, EU morning, US session (busiest).
_HOURS = (np.arange(MINUTES) + 0.5) / 60.0
_SEASON = (
    0.55
    + 0.25 * np.exp(-(((_HOURS - 1.5) / 2.0) ** 2))
    + 0.35 * np.exp(-(((_HOURS - 8.5) / 2.0) ** 2))
    + 0.75 * np.exp(-(((_HOURS - 14.5) / 2.5) ** 2))
)
_SEASON = _SEASON / math.sqrt(float(np.mean(_SEASON**2)))
_WEEKEND = 0.65


def season_of_day(day: int) -> np.ndarray:
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return _SEASON * (_WEEKEND if weekday >= 5 else 1.0)


class DailyWalk:
    """Mean-reverting daily log-level walk pinned to 0 on the reference day, plus a vol regime."""

    def __init__(self, seed: int, key: str, daily_vol: float, half_life_days: float) -> None:
        lo, hi, ref = epoch_day(WALK_FIRST_DAY), epoch_day(WALK_LAST_DAY), epoch_day(REFERENCE_DAY)
        n = hi - lo + 2
        rng = rng_for(seed, "daily-walk", key)
        shocks = rng.standard_normal(n)
        vol_shocks = rng.standard_normal(n)
        a = math.exp(-math.log(2.0) / half_life_days)
        phi, vol_sd = 0.97, 0.18
        h = np.zeros(n)
        x = np.zeros(n)
        r = ref - lo
        for i in range(r + 1, n):
            h[i] = phi * h[i - 1] + vol_sd * vol_shocks[i]
        for i in range(r - 1, -1, -1):
            h[i] = phi * h[i + 1] + vol_sd * vol_shocks[i]
        regime = np.exp(h - 0.5 * vol_sd**2 / (1 - phi**2))
        for i in range(r + 1, n):
            x[i] = a * x[i - 1] + daily_vol * regime[i - 1] * shocks[i]
        for i in range(r - 1, -1, -1):
            x[i] = a * x[i + 1] + daily_vol * regime[i] * shocks[i]
        self.first_day = lo
        self.last_day = hi
        self.x = x
        self.regime = regime

    def anchors(self, day: int) -> tuple[float, float, float]:
        """(log level at day open, at next day open, the day's vol regime multiplier)."""
        if not self.first_day <= day < self.last_day:
            raise ValueError(f"day {day} is outside the simulated range {WALK_FIRST_DAY}..{WALK_LAST_DAY}")
        i = day - self.first_day
        return float(self.x[i]), float(self.x[i + 1]), float(self.regime[i])


@dataclass(frozen=True)
class FairDay:
    log_path: np.ndarray  # log price deviation at every sub-step point (MINUTES * SUBSTEPS + 1)
    minute_sd: np.ndarray  # per-minute return sd
    activity: np.ndarray  # relative activity per minute (season x intraday vol)
    regime: float


def bridge_path(
    seed: int, key: str, day: int, walk: DailyWalk, daily_vol: float, season: np.ndarray
) -> FairDay:
    """The intraday log path of one day: a bridge between two daily anchors with clustered vol."""
    x0, x1, regime = walk.anchors(day)
    rng = rng_for(seed, "intraday", key, day)
    phi, sd = 0.985, 0.06
    stationary_var = sd**2 / (1 - phi**2)
    t = np.arange(MINUTES, dtype=np.float64)
    powers = phi**t
    g0 = rng.standard_normal() * math.sqrt(stationary_var)
    g = powers * (g0 + np.cumsum(sd * rng.standard_normal(MINUTES) / powers))
    activity = season * np.exp(g - stationary_var)
    minute_sd = daily_vol * regime / math.sqrt(MINUTES) * activity
    steps = rng.standard_normal(MINUTES * SUBSTEPS) * np.repeat(minute_sd / math.sqrt(SUBSTEPS), SUBSTEPS)
    walk_path = np.concatenate(([0.0], np.cumsum(steps)))
    frac = np.arange(MINUTES * SUBSTEPS + 1, dtype=np.float64) / (MINUTES * SUBSTEPS)
    log_path = x0 + walk_path - frac * (walk_path[-1] - (x1 - x0))
    return FairDay(log_path, minute_sd, activity, regime)


def _ohlc_from_path(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    inner = points[:-1].reshape(MINUTES, SUBSTEPS)
    opens = points[0:-1:SUBSTEPS]
    closes = points[SUBSTEPS::SUBSTEPS]
    highs = np.maximum(inner.max(axis=1), closes)
    lows = np.minimum(inner.min(axis=1), closes)
    return opens, highs, lows, closes


class SyntheticCandleSource:
    """The synthetic market of one (venue, symbol)."""

    def __init__(self, model: MarketModel, venue: str, spec: SymbolSpec, filler_minutes: bool) -> None:
        self.model = model
        self.venue = venue
        self.spec = spec
        self.filler_minutes = filler_minutes
        self.price_decimals = decimals_of(spec.tick)
        self.volume_decimals = decimals_of(spec.lot)
        self.first_ms = epoch_day(spec.listed) * DAY_MS
        self.last_ms: int | None = None

    def day(self, day: int) -> Candles:
        made = self.model.cache.get_or_make(
            ("candles", self.venue, self.spec.symbol, day), lambda: self._make_day(day)
        )
        assert isinstance(made, Candles)
        return made

    def _make_day(self, day: int) -> Candles:
        spec = self.spec
        fair = self.model.fair_day(spec, day)
        rng = rng_for(self.model.seed, "venue-day", self.venue, spec.symbol, day)
        noise = rng.standard_normal(len(fair.log_path)) * 0.00004
        noise[0] = noise[-1] = 0.0
        prices = spec.price * np.exp(fair.log_path + noise)
        o, h, low, c = _ohlc_from_path(prices)
        tick, lot = spec.tick, spec.lot
        o_t, h_t, l_t, c_t = (np.maximum(1.0, np.rint(p / tick)) for p in (o, h, low, c))
        move = np.abs(np.log(c / o)) / np.maximum(fair.minute_sd, 1e-12)
        size = (
            spec.minute_volume
            * fair.activity
            * fair.regime
            * (0.6 + 0.5 * move)
            * np.exp(0.5 * rng.standard_normal(MINUTES) - 0.125)
        )
        lots = np.maximum(1.0, np.rint(size / lot))
        trades = np.maximum(
            1,
            np.rint(
                spec.trades_per_minute
                * (size / spec.minute_volume)
                * np.exp(0.3 * rng.standard_normal(MINUTES) - 0.045)
            ),
        ).astype(np.int64)
        taker_lots = np.rint(lots * rng.beta(2.0, 2.0, MINUTES))
        quiet = np.clip(np.mean(fair.activity) / np.maximum(fair.activity, 1e-9), 0.2, 5.0)
        no_trade = rng.random(MINUTES) < np.clip(spec.no_trade_rate * quiet, 0.0, 0.95)

        ts = day * DAY_MS + np.arange(MINUTES, dtype=np.int64) * MINUTE_MS
        vwap_t = (o_t + h_t + l_t + c_t) / 4.0
        volume = lots * lot
        candles = Candles(
            ts=ts,
            open=o_t * tick,
            high=h_t * tick,
            low=l_t * tick,
            close=c_t * tick,
            volume=volume,
            quote_volume=volume * vwap_t * tick,
            trades=trades,
            taker_base=taker_lots * lot,
            taker_quote=taker_lots * lot * vwap_t * tick,
            price_decimals=self.price_decimals,
            volume_decimals=self.volume_decimals,
        )
        if not no_trade.any():
            return candles
        if not self.filler_minutes:
            return candles.take(~no_trade)
        # Binance: a minute without trades is a zero-volume candle at the previous close.
        traded_index = np.where(~no_trade, np.arange(MINUTES), -1)
        # index of the last traded minute strictly before each minute (-1: none today)
        before = np.concatenate(([-1], np.maximum.accumulate(traded_index)[:-1]))
        needs_yesterday = bool((before[no_trade] < 0).any())
        carried = self._close_before(day, float(o_t[0] * tick)) if needs_yesterday else 0.0
        previous_close = np.where(before >= 0, candles.close[np.maximum(before, 0)], carried)
        for name in ("open", "high", "low", "close"):
            getattr(candles, name)[no_trade] = previous_close[no_trade]
        for name in ("volume", "quote_volume", "taker_base", "taker_quote"):
            getattr(candles, name)[no_trade] = 0.0
        candles.trades[no_trade] = 0
        return candles

    def _close_before(self, day: int, fallback: float) -> float:
        """Close of the last minute of the previous day (fillers included), for a filler at 00:00."""
        if (day - 1) * DAY_MS < self.first_ms:
            return fallback
        return float(self.day(day - 1).close[-1])

    def partial(self, full: Candles, fraction: float) -> Candles:
        """The still-open candle after ``fraction`` of its minute (``full`` holds one row)."""
        tick, lot = self.spec.tick, self.spec.lot
        out = full.copy()
        if out.volume[0] == 0:  # a filler stays a filler
            return out
        o = out.open[0]
        close = max(tick, round((o + (full.close[0] - o) * fraction) / tick) * tick)
        high = max(o, close, round((o + (full.high[0] - o) * fraction) / tick) * tick)
        low = min(o, close, max(tick, round((o + (full.low[0] - o) * fraction) / tick) * tick))
        out.close[0], out.high[0], out.low[0] = close, high, low
        volume = max(lot, round(full.volume[0] * fraction / lot) * lot)
        share = volume / full.volume[0]
        out.volume[0] = volume
        out.quote_volume[0] = full.quote_volume[0] * share
        out.taker_base[0] = min(volume, round(full.taker_base[0] * share / lot) * lot)
        out.taker_quote[0] = full.taker_quote[0] * share
        out.trades[0] = max(1, int(round(full.trades[0] * share)))
        return out


class ReplayCandleSource:
    """Recorded candles served exactly as recorded: nothing invented between rows."""

    def __init__(self, candles: Candles) -> None:
        order = np.argsort(candles.ts, kind="stable")
        self.candles = candles.take(order)
        self.price_decimals = candles.price_decimals
        self.volume_decimals = candles.volume_decimals
        self.first_ms = int(self.candles.ts[0]) if len(self.candles) else 0
        self.last_ms: int | None = int(self.candles.ts[-1]) if len(self.candles) else -1

    def day(self, day: int) -> Candles:
        lo = np.searchsorted(self.candles.ts, day * DAY_MS, side="left")
        hi = np.searchsorted(self.candles.ts, (day + 1) * DAY_MS, side="left")
        return self.candles.take(slice(lo, hi))

    def partial(self, full: Candles, fraction: float) -> Candles:
        return full


def _mask_windows(ts: np.ndarray, windows: Iterable[Window]) -> np.ndarray:
    keep = np.ones(len(ts), dtype=bool)
    for start, end in windows:
        keep &= ~((ts >= start) & (ts < end))
    return keep


def select_candles(
    source: CandleSource,
    lo_ms: int,
    hi_ms: int,
    limit: int,
    *,
    anchor: str,
    now_ms: int,
    excluded: Callable[[int], Sequence[Window]] = lambda day: (),
) -> Candles:
    """Up to ``limit`` candles with ``lo_ms <= open time <= hi_ms`` (both inclusive), ascending.

    ``anchor="start"`` keeps the oldest ``limit`` rows of the range, ``"end"`` the newest. Rows
    after the minute containing ``now_ms`` do not exist; that minute is served partially filled.
    ``excluded(day)`` lists outage windows of a UTC day (epoch-day number).
    """
    current = (now_ms // MINUTE_MS) * MINUTE_MS
    lo = max(lo_ms, source.first_ms)
    hi = min(hi_ms, current)
    if source.last_ms is not None:
        hi = min(hi, source.last_ms)
    if lo > hi or limit <= 0:
        return Candles.empty(source.price_decimals, source.volume_decimals)
    first_day, last_day = day_of_ms(lo), day_of_ms(hi)
    days = range(first_day, last_day + 1) if anchor == "start" else range(last_day, first_day - 1, -1)
    parts: list[Candles] = []
    count = 0
    for day in days:
        rows = source.day(day)
        if len(rows) == 0:
            continue
        keep = (rows.ts >= lo) & (rows.ts <= hi)
        windows = excluded(day)
        if windows:
            keep &= _mask_windows(rows.ts, windows)
        if not keep.any():
            continue
        part = rows.take(keep)
        parts.append(part)
        count += len(part)
        if count >= limit:
            break
    if anchor != "start":
        parts.reverse()
    out = Candles.concat(parts, source.price_decimals, source.volume_decimals)
    out = out.take(slice(0, limit)) if anchor == "start" else out.take(slice(max(0, len(out) - limit), None))
    if len(out) and out.ts[-1] == current:
        fraction = (now_ms - current) / MINUTE_MS
        tail = source.partial(out.take(slice(len(out) - 1, None)), fraction)
        out = Candles.concat(
            [out.take(slice(0, len(out) - 1)), tail], out.price_decimals, out.volume_decimals
        )
    return out


# -- DVOL ----------------------------------------------------------------------------------------


@dataclass
class DvolRows:
    """DVOL candles ``[ts, open, high, low, close]`` ascending."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> DvolRows:
        return DvolRows(
            *(np.asarray(getattr(self, n)[index]) for n in ("ts", "open", "high", "low", "close"))
        )

    @classmethod
    def empty(cls) -> DvolRows:
        return cls(np.zeros(0, np.int64), *(np.zeros(0) for _ in range(4)))

    @classmethod
    def concat(cls, parts: Sequence[DvolRows]) -> DvolRows:
        if not parts:
            return cls.empty()
        return cls(
            *(np.concatenate([getattr(p, n) for p in parts]) for n in ("ts", "open", "high", "low", "close"))
        )

    def aggregate(self, resolution_ms: int) -> DvolRows:
        """Buckets of ``resolution_ms`` aligned to the epoch: first open, max high, min low, last close."""
        if len(self) == 0:
            return self
        buckets = self.ts - self.ts % resolution_ms
        starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
        ends = np.concatenate((starts[1:], [len(self)])) - 1
        return DvolRows(
            buckets[starts],
            self.open[starts],
            np.maximum.reduceat(self.high, starts),
            np.minimum.reduceat(self.low, starts),
            self.close[ends],
        )


class DvolSource(Protocol):
    first_ms: int
    last_ms: int | None

    def day(self, day: int) -> DvolRows: ...

    def partial(self, full: DvolRows, fraction: float) -> DvolRows: ...


_DVOL_LEVEL = {"BTC": 55.0, "ETH": 65.0}


class SyntheticDvolSource:
    """Synthetic 1-minute DVOL of one currency (two decimals, like Deribit)."""

    def __init__(self, model: MarketModel, currency: str) -> None:
        self.model = model
        self.currency = currency
        self.level = _DVOL_LEVEL.get(currency, 60.0)
        self.first_ms = epoch_day(DVOL_FIRST_DAY) * DAY_MS
        self.last_ms: int | None = None

    def day(self, day: int) -> DvolRows:
        made = self.model.cache.get_or_make(("dvol", self.currency, day), lambda: self._make_day(day))
        assert isinstance(made, DvolRows)
        return made

    def _make_day(self, day: int) -> DvolRows:
        walk = self.model.walk(f"dvol:{self.currency}", 0.06, 30.0)
        fair = bridge_path(self.model.seed, f"dvol:{self.currency}", day, walk, 0.06, np.ones(MINUTES))
        values = self.level * np.exp(fair.log_path)
        o, h, low, c = (np.round(v, 2) for v in _ohlc_from_path(values))
        ts = day * DAY_MS + np.arange(MINUTES, dtype=np.int64) * MINUTE_MS
        return DvolRows(ts, o, np.maximum(h, np.maximum(o, c)), np.minimum(low, np.minimum(o, c)), c)

    def partial(self, full: DvolRows, fraction: float) -> DvolRows:
        o = float(full.open[0])
        close = round(o + (float(full.close[0]) - o) * fraction, 2)
        high = max(o, close, round(o + (float(full.high[0]) - o) * fraction, 2))
        low = min(o, close, round(o + (float(full.low[0]) - o) * fraction, 2))
        return DvolRows(full.ts.copy(), np.array([o]), np.array([high]), np.array([low]), np.array([close]))


class ReplayDvolSource:
    """Recorded DVOL rows (any resolution), served as recorded and aggregated to coarser ones."""

    def __init__(self, rows: DvolRows) -> None:
        order = np.argsort(rows.ts, kind="stable")
        self.rows = rows.take(order)
        self.first_ms = int(self.rows.ts[0]) if len(self.rows) else 0
        self.last_ms: int | None = int(self.rows.ts[-1]) if len(self.rows) else -1

    def day(self, day: int) -> DvolRows:
        lo = np.searchsorted(self.rows.ts, day * DAY_MS, side="left")
        hi = np.searchsorted(self.rows.ts, (day + 1) * DAY_MS, side="left")
        return self.rows.take(slice(lo, hi))

    def partial(self, full: DvolRows, fraction: float) -> DvolRows:
        return full


def select_dvol(
    source: DvolSource,
    start_ms: int,
    end_ms: int,
    resolution_ms: int,
    max_rows: int,
    *,
    now_ms: int,
    earliest_ms: int | None = None,
    excluded: Callable[[int], Sequence[Window]] = lambda day: (),
) -> tuple[DvolRows, int | None]:
    """The newest ``max_rows`` buckets with ``start_ms <= ts <= end_ms``, and the continuation.

    The continuation is the timestamp of the newest bucket left out (use it as the next inclusive
    ``end_timestamp``), ``None`` when the range is exhausted. The bucket containing now is partial.
    """
    current_minute = (now_ms // MINUTE_MS) * MINUTE_MS
    lo = max(start_ms, source.first_ms, earliest_ms if earliest_ms is not None else start_ms)
    hi = min(end_ms, now_ms)
    if source.last_ms is not None:
        hi = min(hi, source.last_ms + resolution_ms - 1)
    if lo > hi:
        return DvolRows.empty(), None
    lo_bucket = lo - lo % resolution_ms
    if lo_bucket < lo:
        lo_bucket += resolution_ms  # a bucket belongs to the range when its timestamp does
    parts: list[DvolRows] = []
    count = 0
    for day in range(day_of_ms(hi), day_of_ms(lo_bucket) - 1, -1):
        minutes = source.day(day)
        if len(minutes) == 0:
            continue
        keep = minutes.ts <= current_minute
        windows = excluded(day)
        if windows:
            keep &= _mask_windows(minutes.ts, windows)
        minutes = minutes.take(keep)
        if len(minutes) and minutes.ts[-1] == current_minute:
            fraction = (now_ms - current_minute) / MINUTE_MS
            last = source.partial(minutes.take(slice(len(minutes) - 1, None)), fraction)
            minutes = DvolRows.concat([minutes.take(slice(0, len(minutes) - 1)), last])
        buckets = minutes.aggregate(resolution_ms)
        buckets = buckets.take((buckets.ts >= lo_bucket) & (buckets.ts <= hi))
        if len(buckets) == 0:
            continue
        parts.append(buckets)
        count += len(buckets)
        if count > max_rows:
            break
    parts.reverse()
    rows = DvolRows.concat(parts)
    if len(rows) > max_rows:
        continuation = int(rows.ts[len(rows) - max_rows - 1])
        return rows.take(slice(len(rows) - max_rows, None)), continuation
    return rows, None


# -- registry ------------------------------------------------------------------------------------


class MarketModel:
    """Shared state of the synthetic market: seed, daily walks, the day cache."""

    def __init__(self, seed: int, cache_days: int = 96) -> None:
        self.seed = seed
        self.cache = LRU(cache_days)
        self._walks: dict[str, DailyWalk] = {}
        self._walk_lock = threading.Lock()

    def walk(self, key: str, daily_vol: float, half_life_days: float) -> DailyWalk:
        with self._walk_lock:
            if key not in self._walks:
                self._walks[key] = DailyWalk(self.seed, key, daily_vol, half_life_days)
            return self._walks[key]

    def fair_day(self, spec: SymbolSpec, day: int) -> FairDay:
        def make() -> FairDay:
            walk = self.walk(spec.symbol, spec.daily_vol, 365.0)
            return bridge_path(self.seed, spec.symbol, day, walk, spec.daily_vol, season_of_day(day))

        made = self.cache.get_or_make(("fair", spec.symbol, day), make)
        assert isinstance(made, FairDay)
        return made


def revise(candles: Candles, index: np.ndarray, factor: float, tick: float) -> Candles:
    """The "revised history" version of some rows: close scaled by ``factor`` (high/low follow)."""
    out = candles.copy()
    close = np.maximum(tick, np.rint(out.close[index] * factor / tick) * tick)
    out.close[index] = close
    out.high[index] = np.maximum(out.high[index], close)
    out.low[index] = np.minimum(out.low[index], close)
    return out
