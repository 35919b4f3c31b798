"""The synthetic market model and candle/DVOL selection, without HTTP."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from marketdata_assets.frames import DAY_MS, MINUTE_MS
from marketdata_assets.simulator.config import SymbolSpec, default_symbols
from marketdata_assets.simulator.market import (
    DvolRows,
    MarketModel,
    SyntheticCandleSource,
    SyntheticDvolSource,
    epoch_day,
    select_candles,
    select_dvol,
)

DAY = epoch_day(date(2024, 3, 5))


def spec(venue: str, symbol: str, **changes: object) -> SymbolSpec:
    found = next(s for s in default_symbols(venue) if s.symbol == symbol)
    return dataclasses.replace(found, **changes)


def source(
    venue: str = "binance", symbol: str = "BTC/USDT", seed: int = 1, **changes: object
) -> SyntheticCandleSource:
    return SyntheticCandleSource(
        MarketModel(seed), venue, spec(venue, symbol, **changes), filler_minutes=venue == "binance"
    )


def test_same_seed_same_day_other_seed_other_day() -> None:
    a, b, c = source(seed=1).day(DAY), source(seed=1).day(DAY), source(seed=2).day(DAY)
    for name in ("ts", "open", "high", "low", "close", "volume", "trades"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.close, c.close)


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT"])
def test_candles_are_consistent_and_on_tick_and_lot(venue: str, symbol: str) -> None:
    src = source(venue, symbol)
    c = src.day(DAY)
    assert np.all(c.high >= np.maximum(c.open, c.close))
    assert np.all(c.low <= np.minimum(c.open, c.close))
    assert np.all(c.low > 0)
    for values, step in ((c.open, src.spec.tick), (c.high, src.spec.tick), (c.volume, src.spec.lot)):
        units = values / step
        assert np.allclose(units, np.rint(units), atol=1e-6)
    assert np.all(np.diff(c.ts) > 0) and np.all(c.ts % MINUTE_MS == 0)
    assert np.all((c.ts >= DAY * DAY_MS) & (c.ts < (DAY + 1) * DAY_MS))


def test_realistic_price_levels_and_venues_agree() -> None:
    btc = {v: source(v).day(DAY).close for v in ("binance", "bybit", "okx")}
    assert 10_000 < btc["binance"][0] < 500_000
    assert np.max(np.abs(btc["okx"] / btc["binance"] - 1)) < 0.001  # one fair price, venue noise only
    assert source(symbol="DOGE/USDT").day(DAY).close[0] < 5


def test_days_chain_and_minutes_chain() -> None:
    src = source()  # BTC/USDT: no minutes without trades
    today, tomorrow = src.day(DAY), src.day(DAY + 1)
    assert len(today) == 1440
    assert np.array_equal(today.close[:-1], today.open[1:])
    assert today.close[-1] == tomorrow.open[0]


def test_minutes_without_trades_binance_filler_others_absent() -> None:
    binance = source("binance", "SOL/USDT", no_trade_rate=0.2).day(DAY)
    okx = source("okx", "SOL/USDT", no_trade_rate=0.2).day(DAY)
    fillers = np.flatnonzero(binance.volume == 0)
    assert len(binance) == 1440 and 100 < len(fillers) < 600
    for i in fillers[fillers > 0]:
        assert (
            binance.open[i] == binance.high[i] == binance.low[i] == binance.close[i] == binance.close[i - 1]
        )
    assert np.all(binance.trades[fillers] == 0)
    assert 1440 - len(okx) > 100 and np.all(okx.volume > 0)


def test_filler_at_midnight_carries_the_previous_days_close() -> None:
    src = source("binance", "DOGE/USDT", no_trade_rate=0.9)
    for day in range(DAY, DAY + 40):
        c = src.day(day)
        if c.volume[0] == 0:
            assert c.open[0] == src.day(day - 1).close[-1]
            return
    pytest.fail("no day started with a filler minute")


def test_busy_hours_and_volatility_clustering() -> None:
    src = source()
    busy, quiet, acf = [], [], []
    for day in range(DAY - 6, DAY + 1):
        c = src.day(day)
        hours = (c.ts % DAY_MS) // 3_600_000
        busy.append(c.volume[(hours >= 13) & (hours < 17)].mean())
        quiet.append(c.volume[(hours >= 3) & (hours < 6)].mean())
        r = np.abs(np.diff(np.log(c.close)))
        acf.append(np.corrcoef(r[1:], r[:-1])[0, 1])
    assert np.mean(busy) > 1.3 * np.mean(quiet)
    assert np.mean(acf) > 0.05


def test_not_listed_before_the_listing_day() -> None:
    src = source(listed=date(2024, 3, 1))
    first = epoch_day(date(2024, 3, 1)) * DAY_MS
    rows = select_candles(src, 0, first + 10 * MINUTE_MS, 1000, anchor="start", now_ms=first + DAY_MS)
    assert rows.ts[0] == first and len(rows) == 11


def test_select_anchor_limit_inclusive_bounds_and_outages() -> None:
    src = source()
    lo, hi = DAY * DAY_MS + 60 * MINUTE_MS, DAY * DAY_MS + 69 * MINUTE_MS
    now = (DAY + 2) * DAY_MS
    both = select_candles(src, lo, hi, 1000, anchor="start", now_ms=now)
    assert both.ts.tolist() == list(range(lo, hi + 1, MINUTE_MS))
    assert select_candles(src, lo, hi, 3, anchor="start", now_ms=now).ts.tolist() == both.ts[:3].tolist()
    assert select_candles(src, lo, hi, 3, anchor="end", now_ms=now).ts.tolist() == both.ts[-3:].tolist()
    spanning = select_candles(
        src, DAY * DAY_MS - 5 * MINUTE_MS, DAY * DAY_MS + 4 * MINUTE_MS, 1000, anchor="end", now_ms=now
    )
    assert len(spanning) == 10  # crosses midnight
    gap = (lo + 2 * MINUTE_MS, lo + 5 * MINUTE_MS)
    holed = select_candles(src, lo, hi, 1000, anchor="start", now_ms=now, excluded=lambda day: [gap])
    assert len(holed) == 7 and not np.any((holed.ts >= gap[0]) & (holed.ts < gap[1]))


def test_still_open_candle_is_partial_and_nothing_after_now() -> None:
    src = source()
    minute = DAY * DAY_MS + 600 * MINUTE_MS
    full = src.day(DAY).take(slice(600, 601))
    rows = select_candles(
        src, minute - 5 * MINUTE_MS, minute + 50 * MINUTE_MS, 1000, anchor="start", now_ms=minute + 15_000
    )
    assert rows.ts[-1] == minute and len(rows) == 6
    last = rows.take(slice(5, 6))
    assert last.open[0] == full.open[0]
    assert last.volume[0] < full.volume[0]
    assert last.high[0] <= full.high[0] and last.low[0] >= full.low[0]
    assert last.high[0] >= max(last.open[0], last.close[0]) and last.low[0] <= min(
        last.open[0], last.close[0]
    )
    later = select_candles(src, minute, minute, 1, anchor="start", now_ms=minute + 59_999)
    assert later.volume[0] >= last.volume[0]


def test_dvol_values_aggregation_and_continuation() -> None:
    dvol = SyntheticDvolSource(MarketModel(1), "BTC")
    minutes = dvol.day(DAY)
    assert len(minutes) == 1440 and 10 < minutes.close.mean() < 200
    assert np.all(minutes.high >= np.maximum(minutes.open, minutes.close))
    hourly = minutes.aggregate(3_600_000)
    assert len(hourly) == 24
    assert hourly.open[1] == minutes.open[60] and hourly.close[1] == minutes.close[119]
    assert hourly.high[1] == minutes.high[60:120].max() and hourly.low[1] == minutes.low[60:120].min()
    start, end, now = DAY * DAY_MS, (DAY + 1) * DAY_MS - 1, (DAY + 5) * DAY_MS
    pages, cursor = [], end
    while cursor is not None:
        rows, cursor = select_dvol(dvol, start, cursor, MINUTE_MS, 1000, now_ms=now)
        pages.append(rows)
    assert [len(p) for p in pages] == [1000, 440]
    stitched = DvolRows.concat(pages[::-1])
    assert stitched.ts.tolist() == list(range(start, end, MINUTE_MS))
    before_dvol, _ = select_dvol(dvol, 0, epoch_day(date(2021, 3, 23)) * DAY_MS, 86_400_000, 1000, now_ms=now)
    assert len(before_dvol) == 0
