"""Resample 1m candles to higher timeframes exactly as the exchange builds its own candles.

Bins are left-closed, left-labelled and aligned to the Unix epoch in UTC (so ``1d`` starts at 00:00 UTC
and ``4h`` at 00, 04, 08 ... UTC, like Binance). Within a bin:

* open / close = open of the first / close of the last **real** minute; high / low = max / min over
  real minutes. A zero-volume filler minute (see :func:`~marketdata_assets.quality.gaps.filler_mask`)
  never sets a price: the exchange's 5m candle opens at the first trade, not at a filler.
* a bin of only filler minutes is a zero-volume candle at the previous close (``o = h = l = c`` = the
  fillers' price, which Binance sets to the previous close).
* volume sums every row.
* ``n_minutes`` counts the 1m rows present (fillers included), ``expected_minutes`` is the bin length,
  ``complete`` is ``n_minutes == expected_minutes``. Bins with missing minutes are still produced (and
  marked incomplete); bins without any row are not produced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketdata_assets.frames import CANDLE_COLUMNS, MINUTE_MS, TIMESTAMP_DTYPE
from marketdata_assets.quality.gaps import filler_mask

TIMEFRAMES: dict[str, int] = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
"""Timeframe name -> bin length in minutes."""

RESAMPLED_COLUMNS = [*CANDLE_COLUMNS, "n_minutes", "expected_minutes", "complete"]


@dataclass(frozen=True)
class _Minutes:
    """The 1m columns as numpy arrays, prepared once for every timeframe."""

    ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    real: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame) -> _Minutes:
        ms = timestamps_ms(df["timestamp"])
        if len(ms) > 1 and not bool(np.all(ms[1:] > ms[:-1])):
            if len(np.unique(ms)) != len(ms):
                raise ValueError("1m frame has duplicate timestamps: dedupe it before resampling")
            df = df.sort_values("timestamp", kind="stable")
            ms = timestamps_ms(df["timestamp"])
        return cls(
            ms=ms,
            open=df["open"].to_numpy(dtype="float64"),
            high=df["high"].to_numpy(dtype="float64"),
            low=df["low"].to_numpy(dtype="float64"),
            close=df["close"].to_numpy(dtype="float64"),
            volume=df["volume"].to_numpy(dtype="float64"),
            real=~filler_mask(df),
        )


def timestamps_ms(timestamps: pd.Series) -> np.ndarray:
    """Epoch milliseconds (int64) of a tz-aware timestamp column, whatever its unit."""
    return timestamps.to_numpy(dtype="datetime64[ms]").view("int64")


def resample_candles(df_1m: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Resample one symbol's unique 1m candles to ``timeframe`` (a key of :data:`TIMEFRAMES`).

    Columns :data:`RESAMPLED_COLUMNS`, one row per bin holding at least one 1m row, in time order.
    """
    return _resample(_Minutes.of(df_1m), timeframe)


def resample_all(
    df_1m: pd.DataFrame, timeframes: Iterable[str] = tuple(TIMEFRAMES)
) -> dict[str, pd.DataFrame]:
    """Every timeframe from one pass over the 1m frame: ``{timeframe: resampled frame}``."""
    minutes = _Minutes.of(df_1m)
    return {timeframe: _resample(minutes, timeframe) for timeframe in timeframes}


def _resample(m: _Minutes, timeframe: str) -> pd.DataFrame:
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {list(TIMEFRAMES)}")
    expected = TIMEFRAMES[timeframe]
    if len(m.ms) == 0:
        return _empty()

    step = expected * MINUTE_MS
    bins = m.ms // step * step
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    n_minutes = np.diff(np.append(starts, len(bins)))

    position = np.arange(len(bins))
    first_real = np.minimum.reduceat(np.where(m.real, position, len(bins)), starts)
    last_real = np.maximum.reduceat(np.where(m.real, position, -1), starts)
    has_real = last_real >= 0
    # a bin of fillers only: every price is the fillers' price (the previous close)
    filler_price = m.close[starts]
    first_real = np.where(has_real, first_real, starts)
    last_real = np.where(has_real, last_real, starts)

    high = np.maximum.reduceat(np.where(m.real, m.high, -np.inf), starts)
    low = np.minimum.reduceat(np.where(m.real, m.low, np.inf), starts)
    return pd.DataFrame(
        {
            "timestamp": _timestamps(bins[starts]),
            "open": np.where(has_real, m.open[first_real], filler_price),
            "high": np.where(has_real, high, filler_price),
            "low": np.where(has_real, low, filler_price),
            "close": np.where(has_real, m.close[last_real], filler_price),
            "volume": np.add.reduceat(m.volume, starts),
            "n_minutes": n_minutes.astype("int64"),
            "expected_minutes": np.full(len(starts), expected, dtype="int64"),
            "complete": n_minutes == expected,
        },
        columns=RESAMPLED_COLUMNS,
    )


def _timestamps(ms: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC")


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in RESAMPLED_COLUMNS})
    return frame.astype(
        {"timestamp": TIMESTAMP_DTYPE, "n_minutes": "int64", "expected_minutes": "int64", "complete": "bool"}
    )
