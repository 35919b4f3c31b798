"""The simulator's state and the venue-independent part of serving a page of candles.

:class:`Simulator` ties together the market (synthetic and replayed sources), the fault book, the
rate limiter, the counters and the clock. The venue modules turn its pages into wire formats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.universe import CANDLE_VENUES

from .config import Outage, SimulatorConfig, SymbolSpec
from .faults import Fault, FaultBook
from .limits import RateLimiter
from .market import (
    Candles,
    CandleSource,
    DvolRows,
    DvolSource,
    MarketModel,
    ReplayCandleSource,
    ReplayDvolSource,
    SyntheticCandleSource,
    SyntheticDvolSource,
    Window,
    revise,
    select_candles,
    select_dvol,
)
from .replay import load_candles, load_dvol
from .stats import Stats

FAR_PAST = -(2**62)
FAR_FUTURE = 2**62


@dataclass(frozen=True)
class Listing:
    """A market a candle venue lists (synthetic or replayed)."""

    symbol: str
    tick: float
    lot: float
    min_qty: float
    min_notional: float
    listed_ms: int

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]


@dataclass
class CandlePage:
    """Rows to serve (ascending) and, under the out-of-order fault, the order to serve them in."""

    candles: Candles
    order: np.ndarray | None = None


@dataclass
class DvolPage:
    rows: DvolRows
    continuation: int | None
    order: np.ndarray | None = None


class Simulator:
    """Everything a running simulator knows; safe to share between the server thread and callers."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        self.model = MarketModel(cfg.seed)
        self.stats = Stats()
        self.faults = FaultBook(cfg.seed)
        self.limiter = RateLimiter(
            enabled=cfg.limits_enabled,
            limit_scale=cfg.limit_scale,
            window_scale=cfg.window_scale,
            ban_scale=cfg.ban_scale,
            ban_after_strikes=cfg.ban_after_strikes,
        )
        self.outages: list[Outage] = list(cfg.outages)
        self._candles: dict[tuple[str, str], CandleSource] = {}
        self._listings: dict[str, dict[str, Listing]] = {}
        self._dvol: dict[str, DvolSource] = {}
        for venue in CANDLE_VENUES:
            self._listings[venue] = {}
            for spec in cfg.symbols_for(venue):
                self._add_synthetic(venue, spec)
        for currency in cfg.dvol_currencies:
            self._dvol[currency.upper()] = SyntheticDvolSource(self.model, currency.upper())
        replayed_candles: dict[tuple[str, str], list[Candles]] = {}
        replayed_dvol: dict[str, list[DvolRows]] = {}
        for source in cfg.replay_sources():  # several files of one instrument are merged
            if source.venue == "deribit":
                replayed_dvol.setdefault(source.instrument, []).append(load_dvol(source.path))
            else:
                replayed_candles.setdefault((source.venue, source.instrument), []).append(
                    load_candles(source.path)
                )
        for currency, parts in replayed_dvol.items():
            self._dvol[currency] = ReplayDvolSource(DvolRows.concat(parts))
        for (venue, symbol), parts in replayed_candles.items():
            merged = Candles.concat(
                parts, max(p.price_decimals for p in parts), max(p.volume_decimals for p in parts)
            )
            self._add_replay(venue, symbol, merged)
        for fault in cfg.faults:
            self.faults.add(fault)

    # -- market -------------------------------------------------------------------------------

    def _add_synthetic(self, venue: str, spec: SymbolSpec) -> None:
        source = SyntheticCandleSource(self.model, venue, spec, filler_minutes=venue == "binance")
        self._candles[(venue, spec.symbol)] = source
        self._listings[venue][spec.symbol] = Listing(
            spec.symbol,
            spec.tick,
            spec.lot,
            spec.min_qty if spec.min_qty is not None else spec.lot,
            spec.min_notional,
            source.first_ms,
        )

    def _add_replay(self, venue: str, symbol: str, candles: Candles) -> None:
        source = ReplayCandleSource(candles)
        self._candles[(venue, symbol)] = source
        tick = 10.0**-source.price_decimals
        lot = 10.0**-source.volume_decimals
        self._listings[venue][symbol] = Listing(symbol, tick, lot, lot, 0.0, source.first_ms)

    def now_ms(self) -> int:
        return int(math.floor(self.config.clock() * 1000))

    def listings(self, venue: str) -> list[Listing]:
        return list(self._listings.get(venue, {}).values())

    def listing(self, venue: str, symbol: str) -> Listing | None:
        return self._listings.get(venue, {}).get(symbol)

    def dvol_currencies(self) -> list[str]:
        return sorted(self._dvol)

    def add_outage(self, outage: Outage) -> None:
        self.outages.append(outage)

    def excluded(self, venue: str, symbol: str) -> Callable[[int], list[Window]]:
        """The outage windows (config outages and outage faults) of a UTC day, for one instrument."""

        def windows(day: int) -> list[tuple[int, int]]:
            lo, hi = day * DAY_MS, (day + 1) * DAY_MS
            out = [
                (max(lo, o.start_ms), min(hi, o.end_ms))
                for o in self.outages
                if o.venue in (venue, "*")
                and (o.symbol is None or o.symbol == symbol)
                and o.start_ms < hi
                and o.end_ms > lo
            ]
            return out + self.faults.outage_windows(venue, symbol, day)

        return windows

    # -- candle pages -------------------------------------------------------------------------

    def candle_page(
        self,
        venue: str,
        endpoint: str,
        symbol: str,
        lo_ms: int | None,
        hi_ms: int | None,
        limit: int,
        *,
        anchor: str,
        floor_ms: int | None = None,
    ) -> CandlePage:
        """Up to ``limit`` candles of ``[lo_ms, hi_ms]`` (inclusive; None = unbounded) with data faults.

        ``floor_ms`` is a hard lower limit the venue imposes (OKX ``candles``: latest 1440 only).
        """
        source = self._candles[(venue, symbol)]
        now = self.now_ms()
        excluded = self.excluded(venue, symbol)
        lo = FAR_PAST if lo_ms is None else lo_ms
        hi = FAR_FUTURE if hi_ms is None else hi_ms
        if floor_ms is not None:
            lo = max(lo, floor_ms)
        candles = select_candles(source, lo, hi, limit, anchor=anchor, now_ms=now, excluded=excluded)
        served_lo = max(lo, source.first_ms)
        served_hi = min(hi, now)
        if served_lo <= served_hi and self._has_outage(excluded, served_lo, served_hi):
            self.stats.fault(venue, "outage")

        listing = self._listings[venue][symbol]
        for fault in self.faults.data_faults(venue, endpoint, symbol, "revised"):
            in_scope = np.array([fault.in_window(int(t)) for t in candles.ts], dtype=bool)
            if not in_scope.any():
                continue
            seen = np.zeros(len(candles), dtype=bool)
            seen[in_scope] = self.faults.served_before(fault, venue, symbol, candles.ts[in_scope])
            if seen.any():
                candles = revise(candles, np.flatnonzero(seen), fault.factor, listing.tick)
                self.stats.fault(venue, "revised")

        for fault in self._firing(venue, endpoint, symbol, "duplicates", candles, lo, hi):
            if fault.mode == "inside":
                if len(candles):
                    head = candles.take(slice(0, fault.rows))
                    candles = Candles.concat([head, candles], candles.price_decimals, candles.volume_decimals)
            elif lo_ms is not None or hi_ms is None:
                extra = select_candles(
                    source, FAR_PAST, lo - 1, fault.rows, anchor="end", now_ms=now, excluded=excluded
                )
                candles = Candles.concat([extra, candles], candles.price_decimals, candles.volume_decimals)
            else:
                extra = select_candles(
                    source, hi + 1, FAR_FUTURE, fault.rows, anchor="start", now_ms=now, excluded=excluded
                )
                candles = Candles.concat([candles, extra], candles.price_decimals, candles.volume_decimals)
            self.stats.fault(venue, "duplicates")

        for fault in self._firing(venue, endpoint, symbol, "invalid", candles, lo, hi):
            if len(candles):
                candles = spoil_candles(candles, fault, self.faults.rng(fault))
                self.stats.fault(venue, "invalid")

        order = None
        for fault in self._firing(venue, endpoint, symbol, "out_of_order", candles, lo, hi):
            if len(candles) >= 2:
                order = shuffled_order(len(candles), self.faults.rng(fault))
                self.stats.fault(venue, "out_of_order")
        self.stats.rows(venue, len(candles))
        return CandlePage(candles, order)

    def _firing(
        self, venue: str, endpoint: str, symbol: str, kind: str, candles: Candles | DvolRows, lo: int, hi: int
    ) -> list[Fault]:
        hits = []
        for fault in self.faults.data_faults(venue, endpoint, symbol, kind):
            span_lo = int(candles.ts[0]) if len(candles) else lo
            span_hi = int(candles.ts[-1]) if len(candles) else hi
            if fault.overlaps(span_lo, span_hi) and self.faults.fire(fault):
                hits.append(fault)
        return hits

    @staticmethod
    def _has_outage(excluded: Callable[[int], list[Window]], lo: int, hi: int) -> bool:
        first, last = lo // DAY_MS, hi // DAY_MS
        if last - first > 3660:
            return False
        for day in range(first, last + 1):
            for start, end in excluded(day):
                if start <= hi and end > lo:
                    return True
        return False

    # -- DVOL pages ---------------------------------------------------------------------------

    def dvol_page(
        self, currency: str, start_ms: int, end_ms: int, resolution_ms: int, max_rows: int
    ) -> DvolPage:
        venue, endpoint = "deribit", "get_volatility_index_data"
        source = self._dvol[currency]
        now = self.now_ms()
        earliest = None
        days = self.config.dvol_minute_history_days
        if resolution_ms <= MINUTE_MS and days is not None and isinstance(source, SyntheticDvolSource):
            earliest = (now // MINUTE_MS) * MINUTE_MS - days * DAY_MS
        excluded = self.excluded(venue, currency)
        rows, continuation = select_dvol(
            source,
            start_ms,
            end_ms,
            resolution_ms,
            max_rows,
            now_ms=now,
            earliest_ms=earliest,
            excluded=excluded,
        )
        if self._has_outage(excluded, max(start_ms, source.first_ms), min(end_ms, now)):
            self.stats.fault(venue, "outage")
        for fault in self.faults.data_faults(venue, endpoint, currency, "revised"):
            in_scope = np.array([fault.in_window(int(t)) for t in rows.ts], dtype=bool)
            if in_scope.any():
                seen = np.zeros(len(rows), dtype=bool)
                seen[in_scope] = self.faults.served_before(fault, venue, currency, rows.ts[in_scope])
                if seen.any():
                    rows = rows.take(slice(None))
                    rows.close[seen] = np.round(rows.close[seen] * fault.factor, 2)
                    rows.high[seen] = np.maximum(rows.high[seen], rows.close[seen])
                    rows.low[seen] = np.minimum(rows.low[seen], rows.close[seen])
                    self.stats.fault(venue, "revised")
        for fault in self._firing(venue, endpoint, currency, "duplicates", rows, start_ms, end_ms):
            if fault.mode == "inside":
                rows = DvolRows.concat([rows.take(slice(0, fault.rows)), rows])
            else:  # backwards paging: the previous page holds the buckets just after end_timestamp
                newer_end = end_ms + fault.rows * resolution_ms
                newer, _ = select_dvol(
                    source, end_ms + 1, newer_end, resolution_ms, fault.rows, now_ms=now, excluded=excluded
                )
                rows = DvolRows.concat([rows, newer])
            self.stats.fault(venue, "duplicates")
        for fault in self._firing(venue, endpoint, currency, "invalid", rows, start_ms, end_ms):
            if len(rows):
                rows = spoil_dvol(rows, fault, self.faults.rng(fault))
                self.stats.fault(venue, "invalid")
        order = None
        for fault in self._firing(venue, endpoint, currency, "out_of_order", rows, start_ms, end_ms):
            if len(rows) >= 2:
                order = shuffled_order(len(rows), self.faults.rng(fault))
                self.stats.fault(venue, "out_of_order")
        self.stats.rows(venue, len(rows))
        return DvolPage(rows, continuation, order)

    # -- misc -----------------------------------------------------------------------------

    def stats_snapshot(self) -> dict:
        return self.stats.snapshot(self.limiter.bans_active())


def shuffled_order(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` that is never the identity (n >= 2)."""
    order = rng.permutation(n)
    if np.all(order == np.arange(n)):
        order[[0, 1]] = order[[1, 0]]
    return order


def _pick(n: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(rows, n), replace=False))


def spoil_candles(candles: Candles, fault: Fault, rng: np.random.Generator) -> Candles:
    """Make ``fault.rows`` rows invalid the way ``fault.what`` says."""
    out = candles.copy()
    index = _pick(len(out), fault.rows, rng)
    step = 10.0**-out.price_decimals
    if fault.what == "nan":
        out.close[index] = np.nan
    elif fault.what == "negative_volume":
        out.volume[index] = -np.maximum(out.volume[index], 10.0**-out.volume_decimals)
    else:
        high, low = out.high[index].copy(), out.low[index].copy()
        flat = high <= low
        out.high[index] = np.where(flat, low - step, low)
        out.low[index] = np.where(flat, low, high)
    return out


def spoil_dvol(rows: DvolRows, fault: Fault, rng: np.random.Generator) -> DvolRows:
    out = rows.take(slice(None))
    index = _pick(len(out), fault.rows, rng)
    if fault.what == "nan":
        out.close[index] = np.nan
    elif fault.what == "negative_volume":  # DVOL has no volume: a negative index value instead
        out.low[index] = -np.abs(out.low[index])
    else:
        high, low = out.high[index].copy(), out.low[index].copy()
        flat = high <= low
        out.high[index] = np.where(flat, low - 0.01, low)
        out.low[index] = np.where(flat, low, high)
    return out
